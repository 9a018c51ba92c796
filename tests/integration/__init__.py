"""Tests against real parts: Spark, the MLflow server, the broker, the GCS emulator, Airflow."""
