"""The local backend: bucket folders, spark-submit jobs with Dataproc states, an MLflow server,
a Kafka-protocol broker, the demo."""
