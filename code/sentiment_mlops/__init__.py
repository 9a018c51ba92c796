"""Sentiment MLOps platform: Spark training and serving jobs, registry helpers, DAG logic."""

__version__ = "0.1.0"
