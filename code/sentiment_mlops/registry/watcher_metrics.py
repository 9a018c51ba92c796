"""Prometheus series of a ModelWatcher (the model being served, its swaps and rejected versions), read
from the watcher when collected, so there is no second copy to keep in step. The online server exports
them as `sentiment_online_*`, the streaming job as `sentiment_stream_*`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sentiment_mlops.registry.model_watcher import LoadedModel, ModelWatcher


class WatcherCollector:
    """`{prefix}_model_loaded`, `_model_version{name,alias}`, `_model_info{name,version,alias,run_id,...}`,
    `_model_reloads_total`, `_model_reload_failures_total`, `_model_rejected_versions` and
    `_registry_errors_total`. `info_extra` adds labels to the info series (e.g. the model type)."""

    def __init__(
        self,
        watcher: ModelWatcher[Any],
        prefix: str,
        info_extra: Callable[[LoadedModel[Any]], dict[str, str]] | None = None,
    ) -> None:
        self._watcher = watcher
        self._prefix = prefix
        self._info_extra = info_extra or (lambda _cur: {})

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        p = self._prefix
        w = self._watcher
        cur = w.current
        loaded = GaugeMetricFamily(f"{p}_model_loaded", "1 while a model is serving, else 0")
        loaded.add_metric([], 1.0 if cur else 0.0)
        yield loaded
        version = GaugeMetricFamily(
            f"{p}_model_version", "Registry version being served (0 = none)", labels=["name", "alias"]
        )
        version.add_metric([w.name, w.alias], float(cur.version) if cur and cur.version.isdigit() else 0.0)
        yield version
        if cur is not None:
            info = InfoMetricFamily(f"{p}_model", "The model being served")
            labels = {"name": cur.name, "version": cur.version, "alias": cur.alias, "run_id": cur.run_id or ""}
            info.add_metric([], {**labels, **self._info_extra(cur)})
            yield info
        yield CounterMetricFamily(f"{p}_model_reloads", "Model swaps done", value=w.stats.reloads)
        yield CounterMetricFamily(
            f"{p}_model_reload_failures",
            "New versions rejected (failed to load or failed the smoke check)",
            value=w.stats.reload_failures,
        )
        rejected = GaugeMetricFamily(f"{p}_model_rejected_versions", "Versions rejected and not retried")
        rejected.add_metric([], float(len(w.stats.rejected_versions)))
        yield rejected
        yield CounterMetricFamily(
            f"{p}_registry_errors", "Background registry checks that failed", value=w.stats.registry_errors
        )
