"""The column expressions whose spelling differs between the Spark lines the jobs run on: 3.5 (Dataproc
image 2.2/2.3, Serverless runtime 2.2) and 4.x (image 3.0, Serverless 3.0). Each returns the same
expression on both, so the parsing rules are written once.

* `try_cast`: SQL has had `try_cast` since 3.2, but the `Column.try_cast` method arrived in 4.0. On 3.5 the
  same catalyst expression SQL's `try_cast(x AS t)` parses to (a `Cast` in TRY mode) is built through the
  JVM, so it takes any column, not only a named one.
* `is_valid_utf8`: a 4.0 SQL function. On 3.5, bytes are valid UTF-8 exactly when Java's strict decoder
  (`decode`, which replaces each invalid sequence by U+FFFD) gives back the same bytes; Spark 4 made
  `decode` raise on invalid bytes instead, so there the built-in is used.
"""

from __future__ import annotations

from typing import Any, cast

import pyspark
from pyspark import SparkContext
from pyspark.sql import Column
from pyspark.sql import functions as F

from sentiment_mlops.registry.spark_versions import major_minor


def spark_line() -> tuple[int, int]:
    """(major, minor) of the pyspark this job runs: on a cluster, the cluster's Spark."""
    return major_minor(pyspark.__version__)


def try_cast(value: Column, type_name: str) -> Column:
    """`value` cast to `type_name` (a SQL type: double, long, timestamp), null where it cannot be."""
    if hasattr(Column, "try_cast"):
        return value.try_cast(type_name)
    sc = SparkContext._active_spark_context
    if sc is None or sc._jvm is None:
        raise RuntimeError("try_cast on Spark 3.5 needs an active Spark session")
    jvm = sc._jvm
    expressions = jvm.org.apache.spark.sql.catalyst.expressions
    data_type = jvm.org.apache.spark.sql.types.DataType.fromDDL(type_name)
    classic: Any = value  # 3.5's Column: a wrapper of the JVM Column `_jc`
    try_expr = expressions.Cast(classic._jc.expr(), data_type, jvm.scala.Option.empty(), expressions.EvalMode.TRY())
    column_class: Any = Column  # 4.x's stubs declare no constructor from a JVM Column
    return cast(Column, column_class(jvm.org.apache.spark.sql.Column(try_expr)))


def is_valid_utf8(binary_column: str) -> Column:
    """True where the binary column named `binary_column` holds valid UTF-8 (null where it is null)."""
    if spark_line() >= (4, 0):
        return F.expr(f"is_valid_utf8(cast(`{binary_column}` as string))")
    return F.expr(f"decode(`{binary_column}`, 'UTF-8') = cast(`{binary_column}` as string)")
