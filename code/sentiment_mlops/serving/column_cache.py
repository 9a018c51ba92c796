"""Column expressions built once per JVM instead of once per micro-batch.

Building an expression from PySpark costs one Py4J round trip per function call. The parse rules take
about 1,900 of them, which was a third of a second of driver time in every micro-batch on 2 cores
(2026-12-01), more than running the rules on a small batch. The expressions do not change between
batches, so each is built once: a Column is an unresolved expression in the JVM, valid in any
DataFrame of the same gateway (and a new gateway, as after a Spark restart in tests, builds anew).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, TypeVar, cast

from pyspark import SparkContext

P = ParamSpec("P")
T = TypeVar("T")

_built: dict[tuple[int, str, tuple[Hashable, ...]], Any] = {}


def once_per_jvm(build: Callable[P, T]) -> Callable[P, T]:
    """`build(*args)` the first time it is called with these (hashable) positional args on this
    gateway; the same objects afterwards."""
    name = f"{build.__module__}.{build.__qualname__}"

    @functools.wraps(build)
    def cached(*args: P.args, **kwargs: P.kwargs) -> T:
        if kwargs:
            raise TypeError(f"{name}: positional arguments only (they are the cache key)")
        key = (id(SparkContext._gateway), name, tuple(args))
        if key not in _built:
            _built[key] = build(*args, **kwargs)
        return cast(T, _built[key])

    return cached
