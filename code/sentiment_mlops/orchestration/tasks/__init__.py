"""What the DAG tasks do, as plain functions over an :class:`AirflowConfig`, one module per DAG family.

The DAG files only declare the flow and call these, so every step is unit-testable without a scheduler.
Both backends go through the same code: a :class:`~sentiment_mlops.core.store.Store` (local bucket
folders or GCS) for files and a :class:`~sentiment_mlops.core.job_backend.JobBackend` (the local
spark-submit runner or Dataproc) for Spark jobs, both from :mod:`sentiment_mlops.orchestration.backends`;
the Dataproc Job dicts come from :mod:`sentiment_mlops.jobs` either way.

- :mod:`.common`: what every DAG does (TaskError, input and MLflow checks, staging the code, running a job,
  the serving paths)
- :mod:`.training`: the training pipelines' jobs, best model and report
- :mod:`.serving`: deploying the streaming job and waiting for its first batch
- :mod:`.management`: listing, inspecting and stopping serving jobs, the monitoring report
- :mod:`.reports`: the Markdown and messages, from plain dicts

Heavy imports (mlflow, pyarrow, the Google clients, Airflow hooks) happen inside the functions:
Airflow imports these modules whenever it parses a DAG file.
"""
