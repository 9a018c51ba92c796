"""Prometheus metrics of the online server: requests, latencies, predictions and model state.

Two families of names: `sentiment_online_*` (per endpoint and status, model and reload state) and
the reference model server's `model_predictions_total`, `model_prediction_duration_seconds`,
`model_positive_predictions_total` and `model_negative_predictions_total`, kept so its dashboards
and queries work unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from sentiment_mlops.online.model import Prediction, SparkFreeModel
from sentiment_mlops.registry.model_watcher import ModelWatcher

ENDPOINTS = frozenset({"/health", "/ping", "/info", "/invocations", "/predict", "/reload", "/metrics"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _WatcherCollector:
    """Model and reload state read from the watcher at scrape time (no second copy to keep)."""

    def __init__(self, watcher: ModelWatcher[SparkFreeModel]) -> None:
        self._watcher = watcher

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        w = self._watcher
        cur = w.current
        loaded = GaugeMetricFamily("sentiment_online_model_loaded", "1 while a model is serving, else 0")
        loaded.add_metric([], 1.0 if cur else 0.0)
        yield loaded
        version = GaugeMetricFamily(
            "sentiment_online_model_version", "Registry version being served (0 = none)", labels=["name", "alias"]
        )
        version.add_metric([w.name, w.alias], float(cur.version) if cur and cur.version.isdigit() else 0.0)
        yield version
        if cur is not None:
            info = InfoMetricFamily("sentiment_online_model", "The model being served")
            info.add_metric(
                [],
                {
                    "name": cur.name,
                    "version": cur.version,
                    "alias": cur.alias,
                    "run_id": cur.run_id or "",
                    "model_type": cur.model.model_type,
                    "loaded_at": cur.loaded_at,
                },
            )
            yield info
        yield CounterMetricFamily("sentiment_online_model_reloads", "Model swaps done", value=w.stats.reloads)
        yield CounterMetricFamily(
            "sentiment_online_model_reload_failures",
            "New versions rejected (failed to load or failed the smoke check)",
            value=w.stats.reload_failures,
        )
        yield CounterMetricFamily(
            "sentiment_online_registry_errors", "Background registry checks that failed", value=w.stats.registry_errors
        )


class ServerMetrics:
    """The app's metrics, in a registry of its own (several apps, e.g. in tests, share a process)."""

    def __init__(self, watcher: ModelWatcher[SparkFreeModel]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sentiment_online_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "sentiment_online_request_duration_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "sentiment_online_predictions", "Predictions returned, by class", ["sentiment"], registry=r
        )
        self.batch_size = Histogram(
            "sentiment_online_batch_texts",
            "Texts per scoring request",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            registry=r,
        )
        self.reload_requests = Counter(
            "sentiment_online_reload_requests",
            "POST /reload outcomes (changed, unchanged, rejected, error, busy)",
            ["result"],
            registry=r,
        )
        # The reference model server's names.
        self.model_predictions = Counter("model_predictions", "Total number of predictions", registry=r)
        self.model_duration = Histogram(
            "model_prediction_duration_seconds",
            "Prediction latency (model scoring of one request)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_positive = Counter("model_positive_predictions", "Positive sentiment count", registry=r)
        self.model_negative = Counter("model_negative_predictions", "Negative sentiment count", registry=r)
        r.register(_WatcherCollector(watcher))
        for sentiment in ("negative", "positive"):  # export zeros from the start
            self.predictions.labels(sentiment)

    def observe_predictions(self, predictions: list[Prediction], seconds: float) -> None:
        """Count one scored request: its predictions by class and how long scoring took."""
        positives = sum(p.label for p in predictions)
        negatives = len(predictions) - positives
        if positives:
            self.predictions.labels("positive").inc(positives)
            self.model_positive.inc(positives)
        if negatives:
            self.predictions.labels("negative").inc(negatives)
            self.model_negative.inc(negatives)
        self.model_predictions.inc(len(predictions))
        self.model_duration.observe(seconds)
        self.batch_size.observe(len(predictions))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MetricsMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): counts every response by status and times it."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"  # bounded label values
        status = 500  # if the app raises before answering, Starlette's error handler sends a 500
        start = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(endpoint, scope.get("method", ""), str(status)).inc()
