"""Kafka for the serving job: source choice, the Python data source reader, the sink."""
