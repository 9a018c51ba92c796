"""The per-JVM cache of column expressions (serving.column_cache): built once per gateway and argument."""

from __future__ import annotations

import pytest
from pyspark import SparkContext

from sentiment_mlops.serving.column_cache import once_per_jvm


def test_builds_once_per_argument_and_again_on_a_new_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    @once_per_jvm
    def build(kind: str) -> tuple[str, int]:
        calls.append((kind, len(calls)))
        return calls[-1]

    monkeypatch.setattr(SparkContext, "_gateway", object())
    first = build("a")
    assert build("a") is first
    assert build("b") is not first
    assert calls == [("a", 0), ("b", 1)]

    monkeypatch.setattr(SparkContext, "_gateway", object())  # a new JVM: its expressions are built anew
    assert build("a") == ("a", 2)


def test_keyword_arguments_are_refused() -> None:
    @once_per_jvm
    def build(kind: str) -> str:
        return kind

    with pytest.raises(TypeError, match="positional"):
        build(kind="a")
