"""The multi-model Spark ML training job: data loading, model catalog, fitting, metrics, MLflow tracking."""
