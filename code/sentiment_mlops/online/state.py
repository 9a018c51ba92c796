"""What the app serves from: the watcher (which holds the serving model), the metrics, and the
one reload that may run at a time.

A POST /reload never runs on a request thread. It starts one background thread (or, while one
runs, is told so with 409); the request only awaits that thread's Future on the event loop, so a
hung or dead registry ties up neither the event loop nor the thread pool /predict scores on.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sentiment_mlops.online.config import ServerConfig
from sentiment_mlops.online.metrics import ServerMetrics
from sentiment_mlops.online.model import Prediction, SparkFreeModel, load_model
from sentiment_mlops.registry.model_watcher import LoadedModel, ModelWatcher
from sentiment_mlops.registry.smoke_check import check_python_model

log = logging.getLogger("sentiment_mlops.online.server")


class NoModelError(RuntimeError):
    """Nothing is serving yet (answered with 503)."""


@dataclass(frozen=True)
class ReloadOutcome:
    status: int  # the HTTP status to answer with
    body: dict[str, Any]


@dataclass
class ReloadJob:
    future: Future[ReloadOutcome]
    started_at: str
    retry_rejected: bool

    def describe(self) -> dict[str, Any]:
        return {"running": not self.future.done(), "started_at": self.started_at, "retry_rejected": self.retry_rejected}


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


class OnlineServer:
    """State behind the app: the watcher (which holds the serving model) and the metrics."""

    def __init__(self, config: ServerConfig, watcher: ModelWatcher[SparkFreeModel] | None = None) -> None:
        self.config = config
        self.watcher: ModelWatcher[SparkFreeModel] = watcher or ModelWatcher(
            tracking_uri=config.tracking_uri,
            name=config.model_name,
            stage_or_alias=config.model_ref,
            loader=lambda uri: load_model(uri, config.tracking_uri),
            smoke_check=check_python_model,
            poll_seconds=config.reload_interval_seconds or 300.0,
        )
        self.metrics = ServerMetrics(self.watcher)
        self.last_error: str | None = None
        self._reload_guard = threading.Lock()
        self._reload: ReloadJob | None = None

    # Lifecycle. The first load runs in a thread so /health answers (503) while it happens.
    def start(self) -> None:
        threading.Thread(target=self._initial_load, name="online-server-bootstrap", daemon=True).start()

    def _initial_load(self) -> None:
        try:
            self.watcher.load_initial(retries=5, delay=2.0)
            self.last_error = None
        except Exception as exc:  # registry down or no usable version yet: keep answering 503
            self.last_error = one_line(exc)
            log.error("no model loaded at start-up (%s); polling and POST /reload keep trying", self.last_error)
        if self.config.reload_interval_seconds > 0:
            self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def current(self) -> LoadedModel[SparkFreeModel]:
        """The serving model; raises NoModelError when there is none yet."""
        loaded = self.watcher.current
        if loaded is None:
            suffix = f" (last error: {self.last_error})" if self.last_error else ""
            raise NoModelError(f"no model loaded yet for {self.config.model_uri}{suffix}")
        return loaded

    def score(self, texts: list[str]) -> tuple[LoadedModel[SparkFreeModel], list[Prediction]]:
        """Predictions for `texts` and the model that made them (kept even if a swap happens now)."""
        loaded = self.current()
        start = time.perf_counter()
        predictions = loaded.model.predict(texts)
        self.metrics.observe_predictions(predictions, time.perf_counter() - start)
        return loaded, predictions

    # Reloads.
    def start_reload(self, retry_rejected: bool = False) -> ReloadJob | None:
        """Start a reload in a background thread; None (and nothing started) while one runs."""
        with self._reload_guard:
            if self._reload is not None and not self._reload.future.done():
                return None
            job = ReloadJob(Future(), datetime.now(UTC).isoformat(timespec="seconds"), retry_rejected)
            self._reload = job
        threading.Thread(target=self._run_reload, args=(job,), name="online-server-reload", daemon=True).start()
        return job

    def reload_state(self) -> dict[str, Any] | None:
        job = self._reload
        return job.describe() if job else None

    def _run_reload(self, job: ReloadJob) -> None:
        try:
            job.future.set_result(self.reload(job.retry_rejected))
        except BaseException as exc:  # never leave the Future pending: the next reload waits on it
            log.exception("reload failed unexpectedly")
            job.future.set_result(self._reload_error(500, f"reload failed: {one_line(exc)}"))

    def _reload_error(self, status: int, detail: str) -> ReloadOutcome:
        self.metrics.reload_requests.labels("error").inc()
        cur = self.watcher.current
        return ReloadOutcome(
            status,
            {
                "status": "error",
                "message": detail,
                "detail": detail,
                "model_uri": self.config.model_uri,
                "serving_version": cur.version if cur else None,
            },
        )

    def reload(self, retry_rejected: bool = False) -> ReloadOutcome:
        """Ask the registry now and swap if the alias moved (blocking: call it off the request path)."""
        stats = self.watcher.stats
        if retry_rejected:
            self.watcher.forget_rejected()
        rejected_before = dict(stats.rejected_versions)
        try:
            old, new, changed = self.watcher.check_once()
        except LookupError as exc:  # the alias/stage/version does not exist (yet)
            self.last_error = one_line(exc)
            return self._reload_error(404, f"{self.last_error}; still serving {self._serving()}")
        except Exception as exc:  # registry unreachable, or the first version failed to load
            self.last_error = one_line(exc)
            return self._reload_error(503, f"reload failed: {self.last_error}; still serving {self._serving()}")
        cur = self.watcher.current
        if cur is None:  # the registry's version was rejected before and nothing else ever loaded
            return self._reload_error(
                503,
                f"no usable version: rejected {stats.rejected_versions}; "
                "register a working version or retry with ?retry_rejected=true",
            )
        newly_rejected = {v: r for v, r in stats.rejected_versions.items() if v not in rejected_before}
        result = "changed" if changed else ("rejected" if newly_rejected else "unchanged")
        self.metrics.reload_requests.labels(result).inc()
        if changed:
            self.last_error = None
        name = self.config.reported_name
        return ReloadOutcome(
            200,
            {
                "status": "success",
                "message": f"Model '{name}' reloaded successfully - "
                + ("version changed!" if changed else f"version unchanged (v{cur.version})"),
                "model_uri": self.config.model_uri,
                "old_version": old,
                "new_version": new,
                "version_changed": changed,
                "changed": changed,
                "serving_version": cur.version,
                "rejected": newly_rejected,
                "rejected_versions": dict(stats.rejected_versions),
            },
        )

    def _serving(self) -> str:
        cur = self.watcher.current
        return f"v{cur.version}" if cur else "nothing"

    def info(self) -> dict[str, Any]:
        """GET /info: the reference shape (`model_name`, `model_uri`, `metadata`, `status`) plus the
        flat fields of this server."""
        cur = self.watcher.current
        described = self.watcher.describe()
        return {
            "model_name": self.config.reported_name,
            "model_uri": self.config.model_uri,
            "metadata": {
                "model_name": self.watcher.name,
                "version": described["version"],
                "stage": self.config.model_ref,
                "run_id": described["run_id"],
                "status": "READY" if cur else "NOT_LOADED",
                "loaded_at": described["loaded_at"],
            },
            "status": "loaded" if cur else "not_loaded",
            "name": self.watcher.name,
            "version": described["version"],
            "alias": self.watcher.alias,
            "run_id": described["run_id"],
            "loaded_at": described["loaded_at"],
            "serving_uri": described["uri"],
            "tracking_uri": self.config.tracking_uri,
            **(cur.model.describe() if cur else {"model_type": None}),
            "reloads": described["reloads"],
            "reload_failures": described["reload_failures"],
            "registry_errors": described["registry_errors"],
            "rejected_versions": described["rejected_versions"],
            "last_check_at": self.watcher.stats.last_check_at,
            "last_error": self.last_error,
            "reload": self.reload_state(),
            "reload_interval_seconds": self.config.reload_interval_seconds,
            "max_batch": self.config.max_batch,
            "max_text_chars": self.config.max_text_chars,
        }
