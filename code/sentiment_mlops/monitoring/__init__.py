"""Model monitoring without Spark or Airflow: reference profiles, drift (PSI) and live accuracy."""
