"""ModelWatcher's rules without a server: which version serves, when a candidate is rejected and for how
long, what a registry outage does. The registry is a small in-memory stand-in answering the two calls
the watcher makes; tests/integration/test_model_watcher.py runs the same logic against a real MLflow."""

from __future__ import annotations

import os
import time
import urllib.error
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    REQUEST_LIMIT_EXCEEDED,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from sentiment_mlops.registry import model_watcher
from sentiment_mlops.registry.model_watcher import ModelWatcher, is_transient_failure


class Registry:
    """name@alias -> version, as MlflowClient answers it; `down` makes every call fail."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.down = False
        self.calls = 0

    def _version(self, version: str) -> Any:
        return SimpleNamespace(version=version, run_id=f"run-{version}", source=f"s3://m/{version}")

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        self.calls += 1
        if self.down:
            raise ConnectionError("registry unreachable")
        if alias not in self.aliases:
            raise MlflowException(f"no alias {alias}", error_code=RESOURCE_DOES_NOT_EXIST)
        return self._version(self.aliases[alias])

    def get_model_version(self, name: str, version: str) -> Any:
        self.calls += 1
        return self._version(version)


class Watcher(ModelWatcher[str]):
    def __init__(self, registry: Registry, stage: str = "Production", **kwargs: Any) -> None:
        self.loads: list[str] = []
        self.broken: set[str] = set()

        def load(uri: str) -> str:
            self.loads.append(uri)
            if uri.rsplit("/", 1)[1] in self.broken:
                raise ValueError("cannot load this one\nsecond line")
            return f"model {uri}"

        super().__init__("http://registry.invalid", "m", stage, load, **kwargs)
        self.registry = registry

    def _client(self) -> Any:
        return self.registry


@pytest.fixture()
def reg() -> Registry:
    r = Registry()
    r.aliases["production"] = "1"
    return r


def test_first_load_serves_the_alias_version(reg: Registry) -> None:
    w = Watcher(reg)
    loaded = w.load_initial(retries=1, delay=0)
    assert (loaded.model, loaded.version, loaded.alias, loaded.run_id, loaded.uri) == (
        "model models:/m/1",
        "1",
        "production",
        "run-1",
        "models:/m/1",
    )
    assert w.current is loaded and loaded.name == "m"
    described = w.describe()
    assert described == {
        "name": "m",
        "alias": "production",
        "version": "1",
        "run_id": "run-1",
        "uri": "models:/m/1",
        "loaded_at": loaded.loaded_at,
        "reloads": 1,
        "reload_failures": 0,
        "registry_errors": 0,
        "rejected_versions": {},
        "transient_load_failures": 0,
    }
    assert w.stats.last_check_at is not None


def test_nothing_served_describes_as_empty(reg: Registry) -> None:
    d = Watcher(reg).describe()
    assert (d["version"], d["run_id"], d["uri"], d["loaded_at"], d["reloads"]) == (None, None, None, None, 0)


def test_alias_move_swaps_and_tells_listeners(reg: Registry) -> None:
    w = Watcher(reg)
    swaps: list[tuple[str | None, str]] = []
    w.on_swap(lambda old, new: swaps.append((old.version if old else None, new.version)))
    assert w.check_once() == (None, "1", True)
    assert w.check_once() == ("1", "1", False)  # unchanged alias: no reload
    assert w.loads == ["models:/m/1"]
    reg.aliases["production"] = "2"
    assert w.check_once() == ("1", "2", True)
    assert swaps == [(None, "1"), ("1", "2")]
    assert w.current is not None and w.current.version == "2" and w.stats.reloads == 2


def test_broken_candidate_is_rejected_once_and_the_current_model_keeps_serving(reg: Registry) -> None:
    w = Watcher(reg)
    w.check_once()
    reg.aliases["production"] = "2"
    w.broken.add("2")
    assert w.check_once() == ("1", "1", False)
    assert w.current is not None and w.current.version == "1"
    assert w.stats.rejected_versions == {"2": "ValueError: cannot load this one"}
    assert w.stats.reload_failures == 1
    assert w.check_once() == ("1", "1", False)
    assert w.loads.count("models:/m/2") == 1  # remembered, not loaded again every poll
    w.broken.clear()
    w.forget_rejected()
    assert w.check_once() == ("1", "2", True)


def test_smoke_check_failure_rejects_the_candidate(reg: Registry) -> None:
    def check(model: str) -> None:
        if model.endswith("/2"):
            raise AssertionError("")

    w = Watcher(reg, smoke_check=check)
    w.check_once()
    reg.aliases["production"] = "2"
    assert w.check_once() == ("1", "1", False)
    assert w.stats.rejected_versions == {"2": "AssertionError: "}


def test_long_failure_reasons_are_cut_to_300_characters(reg: Registry) -> None:
    def check(model: str) -> None:
        raise RuntimeError("x" * 500)

    w = Watcher(reg, smoke_check=check)
    with pytest.raises(RuntimeError):
        w.check_once()
    assert w.stats.rejected_versions["1"] == "RuntimeError: " + "x" * 300


def test_broken_first_version_fails_at_once_without_retries(reg: Registry) -> None:
    w = Watcher(reg)
    w.broken.add("1")
    with pytest.raises(RuntimeError, match=r"could not load models:/m@production: cannot load this one"):
        w.load_initial(retries=3, delay=0)
    assert w.loads == ["models:/m/1"]
    # Rejected and remembered: a second start does not load it again.
    with pytest.raises(RuntimeError, match="could not load"):
        w.load_initial(retries=3, delay=0)
    assert w.loads == ["models:/m/1"]


def test_registry_errors_on_start_are_retried_with_backoff(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(model_watcher.time, "sleep", sleeps.append)
    reg.down = True
    w = Watcher(reg)
    with pytest.raises(RuntimeError, match="registry unreachable"):
        w.load_initial(retries=3, delay=1.5)
    assert sleeps == [1.5, 3.0, 6.0] and reg.calls == 3

    sleeps.clear()
    reg.down = False
    assert w.load_initial(retries=3, delay=1.5).version == "1" and sleeps == []


def test_unset_alias_is_a_lookup_error(reg: Registry) -> None:
    w = Watcher(reg, stage="champion")
    with pytest.raises(LookupError, match="registered model m has no version at @champion"):
        w.check_once()


def test_stage_words_map_to_aliases_and_numbers_pin_a_version(reg: Registry) -> None:
    assert Watcher(reg, stage="Production").alias == "production"
    pinned = Watcher(reg, stage="7")
    assert pinned.alias == "7"
    assert pinned.check_once() == (None, "7", True)


def test_poll_loop_keeps_serving_through_registry_errors_and_backs_off(reg: Registry) -> None:
    w = Watcher(reg, poll_seconds=0.01, max_backoff_seconds=0.02)
    w.load_initial(retries=1, delay=0)
    reg.down = True
    w.start()
    w.start()  # a second start is a no-op, not a second thread
    try:
        deadline = time.monotonic() + 10
        while w.stats.registry_errors < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.stats.registry_errors >= 3
        assert w.current is not None and w.current.version == "1"
        reg.down = False
        reg.aliases["production"] = "3"
        while (w.current is None or w.current.version != "3") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.current is not None and w.current.version == "3"
    finally:
        w.stop()
    assert w._thread is not None and not w._thread.is_alive()


def test_poll_loop_waits_poll_seconds_between_checks(reg: Registry) -> None:
    w = Watcher(reg, poll_seconds=30)
    w.start()
    time.sleep(0.3)
    assert reg.calls == 0  # the first check comes after one interval
    w.stop()


def test_registry_calls_fail_fast_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "99")
    model_watcher.prefer_fast_registry_failures()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "99"
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT")
    model_watcher.prefer_fast_registry_failures()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_operators_read_what_was_rejected_and_what_serves(reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="sentiment_mlops.registry.model_watcher")
    w = Watcher(reg)
    w.check_once()
    reg.aliases["production"] = "2"
    w.broken.add("2")
    w.check_once()
    w.broken.clear()
    reg.aliases["production"] = "3"
    w.check_once()
    assert [r.getMessage() for r in caplog.records] == [
        "serving m v1 (@production)",
        "rejected m v2 (ValueError: cannot load this one); still serving v1",
        "serving m v3 (@production), was v1",
    ]
    assert w.stats.reload_failures == 1 and w.stats.reloads == 2


def test_failures_are_counted_one_by_one(reg: Registry) -> None:
    w = Watcher(reg)
    w.check_once()
    for version in ("2", "3"):
        w.broken.add(version)
        reg.aliases["production"] = version
        w.check_once()
    assert w.stats.reload_failures == 2 and set(w.stats.rejected_versions) == {"2", "3"}


def test_rejected_version_with_nothing_serving_reports_nothing(reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    w = Watcher(reg)
    w.broken.add("1")
    with pytest.raises(ValueError):
        w.check_once()
    assert w.check_once() == (None, None, False)  # remembered: not loaded again
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "rejected m v1 (ValueError: cannot load this one); still serving nothing"
    ]


def test_first_load_failure_is_logged_with_its_attempt(
    reg: Registry, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_watcher.time, "sleep", lambda _s: None)
    reg.down = True
    with pytest.raises(RuntimeError) as info:
        Watcher(reg, stage="Staging").load_initial(retries=2, delay=0)
    assert str(info.value) == "could not load models:/m@staging: registry unreachable"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "initial model load failed (attempt 1/2): registry unreachable",
        "initial model load failed (attempt 2/2): registry unreachable",
    ]


class ScriptedStop:
    """The watcher's stop event: records each wait and stops the loop after `rounds` waits."""

    def __init__(self, rounds: int) -> None:
        self.waits: list[float] = []
        self.rounds = rounds

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return len(self.waits) > self.rounds

    def set(self) -> None:
        self.rounds = 0


def test_poll_schedule_backs_off_exponentially_and_recovers(reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    w = Watcher(reg, poll_seconds=60, max_backoff_seconds=20)
    outcomes = iter([None, "down", "down", "down", "down", "down", None, "down"])

    def check_once() -> tuple[str | None, str | None, bool]:
        if next(outcomes) == "down":
            raise ConnectionError("registry unreachable")
        return "1", "1", False

    w.check_once = check_once  # type: ignore[method-assign]
    stop = ScriptedStop(rounds=8)
    w._stop = stop  # type: ignore[assignment]
    w._run()
    assert stop.waits == [60, 60, 2.0, 4.0, 8.0, 16.0, 20, 60, 2.0]
    assert w.stats.registry_errors == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings[:2] == [
        "registry check failed (registry unreachable); keep serving, next try in 2s",
        "registry check failed (registry unreachable); keep serving, next try in 4s",
    ]


def test_watcher_thread_is_a_named_daemon(reg: Registry) -> None:
    w = Watcher(reg, poll_seconds=30)
    w.start()
    try:
        assert w._thread is not None and w._thread.daemon and w._thread.name == "model-watcher-m"
    finally:
        w.stop()


def test_default_poll_and_backoff_are_five_minutes(reg: Registry) -> None:
    w = ModelWatcher("http://registry.invalid", "m", "Production", loader=str)
    assert (w.poll_seconds, w.max_backoff_seconds, w.tracking_uri) == (300.0, 300.0, "http://registry.invalid")
    assert w.alias == "production" and ModelWatcher("u", "m", "12", loader=str).alias == "12"
    assert w.stats.last_check_at is None


def test_last_check_time_is_utc(reg: Registry) -> None:
    w = Watcher(reg)
    w.check_once()
    assert w.stats.last_check_at is not None and w.stats.last_check_at.endswith("+00:00")


def test_default_first_load_retries_five_times_from_two_seconds(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(model_watcher.time, "sleep", sleeps.append)
    reg.down = True
    with pytest.raises(RuntimeError, match="registry unreachable"):
        Watcher(reg).load_initial()
    assert sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_watcher_asks_the_registry_at_its_tracking_uri() -> None:
    w = ModelWatcher("http://registry.invalid:5000", "m", "Production", loader=str)
    assert w._client().tracking_uri == "http://registry.invalid:5000"


def _chained(outer: Exception, inner: BaseException, *, as_cause: bool) -> Exception:
    """`outer` raised from `inner` (`raise outer from inner`) or while handling it (its context only)."""
    try:
        try:
            raise inner
        except BaseException as exc:
            if as_cause:
                raise outer from exc
            raise outer  # noqa: B904  # the implicit context is what is tested
    except Exception as raised:
        return raised
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionRefusedError("nope"), True),  # ConnectionError family
        (TimeoutError("slow"), True),
        (urllib.error.URLError("dns"), True),  # by class name: an OSError, not a ConnectionError
        (type("ReadTimeout", (Exception,), {})("read"), True),  # requests' class names
        (MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE), True),
        (MlflowException("slow down", error_code=REQUEST_LIMIT_EXCEEDED), True),
        (MlflowException("API request failed: Max retries exceeded with url /api"), True),  # the text only
        (MlflowException("HTTP 503: Service Unavailable"), True),
        (MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST), False),
        (ValueError("cannot load this one"), False),
        (AssertionError(""), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_unreachable_servers_are_told_apart_from_broken_models(exc: Exception, transient: bool) -> None:
    assert is_transient_failure(exc) is transient


def test_a_failure_raised_from_an_unreachable_server_is_transient() -> None:
    for as_cause in (True, False):
        assert is_transient_failure(_chained(OSError("load failed"), ConnectionResetError("x"), as_cause=as_cause))
        assert not is_transient_failure(_chained(OSError("load failed"), KeyError("stage"), as_cause=as_cause))


def test_a_cycle_of_exceptions_ends_the_search() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert is_transient_failure(a) is False


def test_load_failing_on_an_unreachable_server_is_retried_next_poll_not_rejected(
    reg: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable: set[str] = {"2"}

    def load(uri: str) -> str:
        if uri.rsplit("/", 1)[1] in unreachable:
            raise MlflowException("API request to s3 failed: Max retries exceeded\nmore")
        return f"model {uri}"

    w = ModelWatcher[str]("http://registry.invalid", "m", "Production", loader=load)
    w._client = lambda: reg  # type: ignore[method-assign]
    w.check_once()
    reg.aliases["production"] = "2"
    assert w.check_once() == ("1", "1", False)
    assert w.check_once() == ("1", "1", False)  # tried again: not remembered as broken
    assert (w.stats.transient_load_failures, w.stats.reload_failures, w.stats.rejected_versions) == (2, 2, {})
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "could not load m v2 (MlflowException: API request to s3 failed: Max retries exceeded): "
        "server unreachable, retried next poll"
    ] * 2
    unreachable.clear()
    assert w.check_once() == ("1", "2", True)
    assert w.describe()["transient_load_failures"] == 2


def test_an_optional_alias_may_name_nothing_and_may_go_away(reg: Registry) -> None:
    """The streaming job's shadow challenger: no alias is a normal state, not a registry error."""
    w = Watcher(reg, "challenger", optional=True)
    assert w.check_once() == (None, None, False) and w.current is None
    reg.aliases["challenger"] = "2"
    assert w.check_once() == (None, "2", True) and w.current is not None
    del reg.aliases["challenger"]
    assert w.check_once() == ("2", None, True) and w.current is None
    assert w.stats.dropped == 1 and w.stats.registry_errors == 0
    reg.aliases["challenger"] = "3"
    w.broken.add("3")
    assert w.check_once() == (None, None, False)  # rejected without raising: nothing was held
    assert "3" in w.stats.rejected_versions and w.current is None
    with pytest.raises(LookupError, match="has no version at @shadow"):
        Watcher(reg, "shadow").check_once()  # a served alias that names nothing is an error


def test_a_version_that_breaks_in_use_is_rejected_and_let_go(reg: Registry) -> None:
    reg.aliases["challenger"] = "2"
    w = Watcher(reg, "challenger", optional=True)
    w.check_once()
    assert w.reject("2", "failed a batch") is True and w.current is None
    assert w.check_once() == (None, None, False) and w.loads == ["models:/m/2"]  # not loaded again
    served = Watcher(reg)
    served.check_once()
    assert served.reject("1", "x") is False and served.current is not None  # the served model keeps serving
