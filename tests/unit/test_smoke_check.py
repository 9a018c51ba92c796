"""A version that loads but predicts badly never serves; a version that could not be fetched is retried."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sentiment_mlops.registry import lookups
from sentiment_mlops.registry import model_watcher as mw
from sentiment_mlops.registry.smoke_check import (
    SMOKE_LABELS,
    SMOKE_MIN_ACCURACY_ENV,
    SMOKE_TEXTS,
    check_predictions,
    check_python_model,
)


@dataclass
class _Pred:
    label: int
    probability: float | None = None


class _Fixed:
    def __init__(self, labels: list[int]) -> None:
        self.labels = labels

    def predict(self, texts: Any) -> list[_Pred]:
        return [_Pred(y) for y in self.labels]


def _with_wrong(n: int) -> list[int]:
    labels = list(SMOKE_LABELS)
    for i in range(n):
        labels[i] = 1 - labels[i]
    return labels


def test_a_right_model_passes_and_reports_its_accuracy() -> None:
    assert check_predictions(list(SMOKE_LABELS), [None] * len(SMOKE_LABELS)) == 1.0


def test_an_inverted_model_is_rejected() -> None:
    with pytest.raises(ValueError, match="inverted or broken"):
        check_python_model(_Fixed([1 - y for y in SMOKE_LABELS]))


@pytest.mark.parametrize("label", [0, 1])
def test_a_constant_model_is_rejected(label: int) -> None:
    with pytest.raises(ValueError, match="below"):
        check_python_model(_Fixed([label] * len(SMOKE_TEXTS)))


def test_the_floor_is_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    n = len(SMOKE_LABELS)
    allowed_wrong = int(n * 0.25)  # 0.75 of 16 is 12 right: exactly the floor passes
    assert check_predictions(_with_wrong(allowed_wrong), [None] * n) == (n - allowed_wrong) / n
    with pytest.raises(ValueError, match="below 0.75"):
        check_predictions(_with_wrong(allowed_wrong + 1), [None] * n)
    monkeypatch.setenv(SMOKE_MIN_ACCURACY_ENV, "1")
    with pytest.raises(ValueError, match="below 1.00"):
        check_predictions(_with_wrong(1), [None] * n)
    monkeypatch.setenv(SMOKE_MIN_ACCURACY_ENV, "lots")
    with pytest.raises(ValueError, match=SMOKE_MIN_ACCURACY_ENV):
        check_predictions(list(SMOKE_LABELS), [None] * n)


def test_the_smoke_set_is_balanced_and_clear() -> None:
    assert SMOKE_LABELS.count(1) == SMOKE_LABELS.count(0) >= 6
    assert all(t.strip() and len(t) < 80 for t in SMOKE_TEXTS)


class _ConnError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError("nope"), True),
        (TimeoutError(), True),
        (RuntimeError("API request to http://x/api failed: Max retries exceeded with url"), True),
        (RuntimeError("503 Service Unavailable"), True),
        (type("ConnectionError", (Exception,), {})("requests-style"), True),
        (ValueError("smoke check: accuracy 0.10 on 16 clear tweets is below 0.75"), False),
        (FileNotFoundError("MLmodel missing"), False),
        (OSError("artifact cannot be read"), False),
        (KeyError("features"), False),
    ],
)
def test_transient_failures_are_told_from_broken_models(exc: BaseException, transient: bool) -> None:
    assert mw.is_transient_failure(exc) is transient


def test_transient_cause_found_in_the_chain() -> None:
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("could not download artifacts") from inner
    except RuntimeError as outer:
        assert mw.is_transient_failure(outer)


def test_unreachable_artifact_is_retried_next_poll_and_a_broken_model_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = iter(["1", "2", "2", "3", "3"])
    monkeypatch.setattr(
        lookups,
        "resolve_version",
        lambda client, name, alias: lookups.ResolvedVersion(
            name=name, version=next(versions), alias="production", run_id="r", source="s"
        ),
    )
    unreachable = {"2": 1}  # version 2: the first load fails to reach the store, the second works
    loads: list[str] = []

    def loader(uri: str) -> str:
        version = uri.rsplit("/", 1)[1]
        loads.append(version)
        if unreachable.get(version, 0) > 0:
            unreachable[version] -= 1
            raise ConnectionError("artifact store unreachable")
        if version == "3":
            raise KeyError("model output has no prediction column")
        return version

    watcher: mw.ModelWatcher[str] = mw.ModelWatcher("http://registry.invalid", "m", "production", loader)
    monkeypatch.setattr(watcher, "_client", lambda: None)
    assert watcher.check_once() == (None, "1", True)
    assert watcher.check_once() == ("1", "1", False)  # v2 unreachable: keep v1, do not reject v2
    assert "2" not in watcher.stats.rejected_versions and watcher.stats.transient_load_failures == 1
    assert watcher.check_once() == ("1", "2", True)  # retried, and now it swaps
    assert watcher.check_once() == ("2", "2", False)  # v3 broken: rejected for good
    assert "3" in watcher.stats.rejected_versions
    assert watcher.check_once() == ("2", "2", False)
    assert loads == ["1", "2", "2", "3"]
