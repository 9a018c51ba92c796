"""The Spark-free online model server: model, request protocol, metrics, app. Never imports pyspark."""
