"""Airflow: Variables config, operators, DAG factories and the tasks. The only subpackage that imports Airflow."""
