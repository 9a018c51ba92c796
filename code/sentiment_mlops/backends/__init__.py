"""Backends behind the job specification: `gcp` (GCS, Dataproc) and `local` (folders, spark-submit, MLflow, broker)."""
