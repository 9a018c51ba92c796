-- docker-compose production profile: the `postgres` image creates the role `sentiment` and the
-- database `mlflow` (POSTGRES_USER / POSTGRES_DB); Airflow's metadata DB and MLflow's user store
-- get their own databases, owned by the same role.
CREATE DATABASE airflow;
CREATE DATABASE mlflow_auth;
