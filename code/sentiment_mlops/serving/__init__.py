"""The Spark Structured Streaming serving job: sources, parsing, micro-batch scoring and sinks."""
