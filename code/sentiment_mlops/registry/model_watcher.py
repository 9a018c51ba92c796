"""Registry polling and model hot-swap, shared by the streaming job and the online server.

A background thread asks the registry which version an alias points at. A new version is loaded
off the request/batch path by the front end's `loader`, checked by its `smoke_check`, and only
then swapped in with one reference assignment, so a reader always sees one whole `LoadedModel`.
A version that fails to load or fails the check is rejected (and remembered, so it is not retried
every poll) while the current one keeps serving. A load that failed because the registry or the
artifact store could not be reached (:func:`is_transient_failure`) is not a verdict on the model: that
version is tried again on the next poll. Registry errors back off exponentially.

An `optional` watcher (the streaming job's shadow challenger) treats an alias that names no version as
a normal state, not an error: it holds no model then, and drops the one it held when the alias is
removed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sentiment_mlops.registry import lookups as registry

if TYPE_CHECKING:  # imported when first used: see registry.lookups
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

M = TypeVar("M")

# Failure texts of HTTP clients (requests/urllib3 inside MLflow) when a server could not be reached or
# answered "try later"; MLflow often re-raises those as a plain MlflowException carrying the text.
_TRANSIENT_TEXTS = (
    "max retries exceeded",
    "connection refused",
    "connection reset",
    "connection aborted",
    "timed out",
    "temporary failure in name resolution",
    "temporarily unavailable",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "too many requests",
)
_TRANSIENT_ERROR_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
_TRANSIENT_CLASS_NAMES = {"ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout", "URLError"}


def is_transient_failure(exc: BaseException) -> bool:
    """True when `exc` (or an exception it was raised from) says a server could not be reached or asked
    to retry later, rather than that the model itself is broken."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if type(current).__name__ in _TRANSIENT_CLASS_NAMES:
            return True
        if getattr(current, "error_code", None) in _TRANSIENT_ERROR_CODES:
            return True
        if any(text in str(current).lower() for text in _TRANSIENT_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def prefer_fast_registry_failures() -> None:
    """A poller retries on its own schedule; MLflow's default of 7 retries per call (about 4 minutes)
    would stall it while the registry is down. Explicit settings in the environment win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


@dataclass(frozen=True)
class LoadedModel(Generic[M]):
    model: M
    name: str
    version: str
    alias: str
    run_id: str | None
    uri: str
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass
class WatcherStats:
    reloads: int = 0
    reload_failures: int = 0
    registry_errors: int = 0
    transient_load_failures: int = 0  # loads that failed on an unreachable server: retried next poll
    dropped: int = 0  # optional watcher: times its alias was removed and the model let go
    rejected_versions: dict[str, str] = field(default_factory=dict)  # version -> reason
    last_check_at: str | None = None


class ModelWatcher(Generic[M]):
    """Holds the serving model for `name@alias` and keeps it current."""

    def __init__(
        self,
        tracking_uri: str,
        name: str,
        stage_or_alias: str,
        loader: Callable[[str], M],
        smoke_check: Callable[[M], None] | None = None,
        poll_seconds: float = 300.0,
        max_backoff_seconds: float = 300.0,
        optional: bool = False,
    ) -> None:
        prefer_fast_registry_failures()
        self.tracking_uri = tracking_uri
        self.name = name
        self.stage_or_alias = stage_or_alias
        self.alias = registry.alias_for(stage_or_alias) if not stage_or_alias.isdigit() else stage_or_alias
        self._loader = loader
        self._smoke_check = smoke_check or (lambda _m: None)
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.optional = optional
        self.stats = WatcherStats()
        self._current: LoadedModel[M] | None = None
        self._lock = threading.Lock()  # serialises reloads, never taken by readers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[LoadedModel[M] | None, LoadedModel[M]], None]] = []

    @property
    def current(self) -> LoadedModel[M] | None:
        return self._current

    def on_swap(self, listener: Callable[[LoadedModel[M] | None, LoadedModel[M]], None]) -> None:
        self._listeners.append(listener)

    def _client(self) -> MlflowClient:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def check_once(self) -> tuple[str | None, str | None, bool]:
        """Ask the registry, load and swap if the alias moved. Returns (old, new, changed).

        Raises on registry errors (the poll loop backs off); load/smoke failures are recorded and
        the current model is kept. An optional watcher whose alias names no version drops its model
        (new is None)."""
        with self._lock:
            self.stats.last_check_at = datetime.now(UTC).isoformat(timespec="seconds")
            old = self._current
            resolved = registry.resolve_version(self._client(), self.name, self.stage_or_alias)
            if resolved is None and self.optional:
                return self._drop(old)
            if resolved is None:
                raise LookupError(f"registered model {self.name} has no version at @{self.alias}")
            if old is not None and resolved.version == old.version:
                return old.version, old.version, False
            if resolved.version in self.stats.rejected_versions:
                return (old.version if old else None), (old.version if old else None), False
            try:
                model = self._loader(resolved.uri)
                self._smoke_check(model)
            except Exception as exc:  # any failure of a candidate keeps the current model serving
                self._record_failure(resolved.version, exc, old)
                kept = old.version if old else None  # None: an optional watcher holding nothing
                return kept, kept, False
            new = LoadedModel(
                model=model,
                name=self.name,
                version=resolved.version,
                alias=self.alias,
                run_id=resolved.run_id,
                uri=resolved.uri,
            )
            self._current = new  # the swap: one reference assignment
            self.stats.reloads += 1
            log.info(
                "serving %s v%s (@%s)%s",
                self.name,
                new.version,
                self.alias,
                f", was v{old.version}" if old else "",
            )
            for listener in self._listeners:
                listener(old, new)
            return (old.version if old else None), new.version, True

    def _drop(self, old: LoadedModel[M] | None) -> tuple[str | None, str | None, bool]:
        """The optional alias names nothing (any more): hold no model."""
        if old is None:
            return None, None, False
        self._current = None
        self.stats.dropped += 1
        log.info("@%s of %s names no version any more: v%s no longer used", self.alias, self.name, old.version)
        return old.version, None, True

    def _record_failure(self, version: str, exc: Exception, old: LoadedModel[M] | None) -> None:
        """Count a failed candidate: remembered as rejected unless a server could not be reached (then
        it is tried again on the next poll). Re-raises when nothing serves yet, unless the watcher is
        optional (holding nothing is a normal state there)."""
        text = str(exc).strip()
        reason = f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"
        self.stats.reload_failures += 1
        if is_transient_failure(exc):
            self.stats.transient_load_failures += 1
            log.warning("could not load %s v%s (%s): server unreachable, retried next poll", self.name, version, reason)
        else:
            self.stats.rejected_versions[version] = reason
            serving = f"v{old.version}" if old else "nothing"
            log.error("rejected %s v%s (%s); still serving %s", self.name, version, reason, serving)
        if old is None and not self.optional:
            raise exc

    def reject(self, version: str, reason: str) -> bool:
        """Reject `version` found broken while in use (e.g. a batch failed with it): it is not loaded
        again, and an optional watcher holding it lets it go. True when it was the current model."""
        with self._lock:
            self.stats.rejected_versions[version] = reason
            self.stats.reload_failures += 1
            cur = self._current
            if cur is None or cur.version != version or not self.optional:
                return False
            self._current = None
            log.error("rejected %s v%s while in use (%s); no longer used", self.name, version, reason)
            return True

    def forget_rejected(self) -> None:
        """Let the next check retry versions rejected earlier (e.g. after an operator fixed them)."""
        with self._lock:
            self.stats.rejected_versions.clear()

    def load_initial(self, retries: int = 5, delay: float = 2.0) -> LoadedModel[M]:
        """Load the first model; registry errors are retried with backoff, a broken version is not
        (it fails the same way every time)."""
        last: Exception | None = None
        for attempt in range(retries):
            rejected_before = len(self.stats.rejected_versions)
            try:
                self.check_once()
                if self._current is not None:
                    return self._current
                break  # the alias names a version rejected earlier
            except Exception as exc:
                last = exc
                if len(self.stats.rejected_versions) > rejected_before:
                    break
                log.warning("initial model load failed (attempt %d/%d): %s", attempt + 1, retries, exc)
                time.sleep(delay * (2**attempt))
        raise RuntimeError(f"could not load {registry.model_uri(self.name, self.stage_or_alias)}: {last}")

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"model-watcher-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        wait, backoff = self.poll_seconds, 0.0
        while not self._stop.wait(wait):
            try:
                self.check_once()
                wait, backoff = self.poll_seconds, 0.0
            except Exception as exc:  # registry unreachable: keep serving, back off
                self.stats.registry_errors += 1
                backoff = min(max(backoff * 2, 2.0), self.max_backoff_seconds)
                wait = backoff
                log.warning("registry check failed (%s); keep serving, next try in %.0fs", exc, wait)

    def describe(self) -> dict[str, Any]:
        cur = self._current
        return {
            "name": self.name,
            "alias": self.alias,
            "version": cur.version if cur else None,
            "run_id": cur.run_id if cur else None,
            "uri": cur.uri if cur else None,
            "loaded_at": cur.loaded_at if cur else None,
            "reloads": self.stats.reloads,
            "reload_failures": self.stats.reload_failures,
            "registry_errors": self.stats.registry_errors,
            "transient_load_failures": self.stats.transient_load_failures,
            "rejected_versions": dict(self.stats.rejected_versions),
        }
