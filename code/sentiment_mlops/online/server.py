"""Online model server: REST predictions from the registered Spark model, without Spark.

Start it with one command (every setting is an environment variable):

    MODEL_URI=models:/twitter-sentiment-model-best@production \\
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \\
    python -m sentiment_mlops.online.server

    MODEL_URI                 models:/NAME@alias, models:/NAME/Stage or models:/NAME/VERSION
                              (default models:/twitter-sentiment-model-best@production)
    MLFLOW_TRACKING_URI       tracking and registry server (default http://127.0.0.1:5000)
    HOST, PORT                where to listen (default 127.0.0.1, 8000)
    RELOAD_INTERVAL_SECONDS   how often to ask the registry for a new version (default 300;
                              0 = only on POST /reload)
    MAX_BATCH                 most texts in one /invocations request (default 1000)
    MAX_TEXT_CHARS            longest accepted text (default 10000 characters)
    MAX_BODY_BYTES            largest accepted request body (default 10485760)
    LOG_LEVEL                 default INFO
    MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT   default here 2 retries / 30 s (MLflow's own: 7 / 120)

Endpoints
    GET  /health       200 {"status": "ok", ...} once a model serves, 503 until then (also /ping)
    GET  /info         registered name, version, alias, run id, loaded_at, model type
    POST /invocations  MLflow scoring bodies: {"dataframe_split": {"columns": ["text"], "data": [[..]]}},
                       {"dataframe_records": [{"text": ..}]}, {"instances": [str | {"text": str}]} or
                       {"inputs": [...]} -> {"predictions": [{"label", "sentiment", "probability"}]}
    POST /predict      {"text": "..."} -> {"sentiment", "label", "probability", "model_version", ...}
    POST /reload       ask the registry now -> {"old_version", "new_version", "changed", ...}
                       (?retry_rejected=true also retries versions rejected earlier)
    GET  /metrics      Prometheus text format

`probability` is P(positive) as Spark computes it (probability[1]); it is null for a LinearSVC
model, which has no probability. Prediction responses carry the header X-Model-Version.

The model is loaded by :mod:`sentiment_mlops.online.spark_free_model` (pure Python, same numbers as
Spark) and kept current by the shared :class:`~sentiment_mlops.registry.model_watcher.ModelWatcher`: a new
version is loaded and smoke-tested off the request path and swapped in with one assignment; a
request keeps the model object it started with; a version that fails to load is rejected and the
old one keeps serving.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from starlette.concurrency import run_in_threadpool

from sentiment_mlops.core.errors import ConfigError
from sentiment_mlops.core.settings import DEFAULT_MLFLOW_PORT, DEFAULT_REGISTERED_MODEL_NAME, PRODUCTION_ALIAS
from sentiment_mlops.online.spark_free_model import Prediction, SparkFreeModel, load_model
from sentiment_mlops.registry import lookups as registry
from sentiment_mlops.registry.model_watcher import LoadedModel, ModelWatcher, prefer_fast_registry_failures

log = logging.getLogger("sentiment_mlops.online.server")

DEFAULT_MODEL_URI = registry.model_uri(
    registry.registered_name(DEFAULT_REGISTERED_MODEL_NAME, registry.BEST_SUFFIX), PRODUCTION_ALIAS
)
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ENDPOINTS = frozenset({"/health", "/ping", "/info", "/invocations", "/predict", "/reload", "/metrics"})
SMOKE_TEXTS = ("i love this, best day ever!", "this is awful, i hate it", "")


def parse_model_uri(uri: str) -> tuple[str, str]:
    """`models:/NAME@alias` -> (NAME, alias); `models:/NAME/Production` or `/3` -> (NAME, that)."""
    value = uri.strip()
    if not value.startswith("models:/"):
        raise ConfigError(
            f"MODEL_URI must be a registry URI (models:/NAME@alias, models:/NAME/Stage or models:/NAME/VERSION), "
            f"got {uri!r}: only registry URIs can be watched for new versions"
        )
    rest = value.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, _, ref = rest.rpartition("@")
    elif "/" in rest:
        name, _, ref = rest.partition("/")
    else:
        name, ref = rest, ""
    if not name or not ref or "/" in name or "/" in ref:
        raise ConfigError(f"MODEL_URI {uri!r} needs a name and an @alias, a /Stage or a /VERSION")
    return name, ref


@dataclass(frozen=True)
class ServerConfig:
    model_uri: str = DEFAULT_MODEL_URI
    tracking_uri: str = f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"
    host: str = "127.0.0.1"
    port: int = 8000
    reload_interval_seconds: float = 300.0
    max_batch: int = 1000
    max_text_chars: int = 10_000
    max_body_bytes: int = 10 * 1024 * 1024

    def __post_init__(self) -> None:
        parse_model_uri(self.model_uri)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"PORT must be 0-65535, got {self.port}")
        if self.reload_interval_seconds < 0 or not math.isfinite(self.reload_interval_seconds):
            raise ConfigError(f"RELOAD_INTERVAL_SECONDS must be >= 0, got {self.reload_interval_seconds}")
        for name in ("max_batch", "max_text_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.upper()} must be at least 1, got {getattr(self, name)}")

    @property
    def model_name(self) -> str:
        return parse_model_uri(self.model_uri)[0]

    @property
    def model_ref(self) -> str:
        return parse_model_uri(self.model_uri)[1]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        env = os.environ if env is None else env
        defaults = cls()

        def number(key: str, default: float, kind: type) -> Any:
            raw = env.get(key, "").strip()
            if not raw:
                return default
            try:
                return kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from exc

        return cls(
            model_uri=env.get("MODEL_URI", "").strip() or defaults.model_uri,
            tracking_uri=env.get("MLFLOW_TRACKING_URI", "").strip() or defaults.tracking_uri,
            host=env.get("HOST", "").strip() or defaults.host,
            port=number("PORT", defaults.port, int),
            reload_interval_seconds=number("RELOAD_INTERVAL_SECONDS", defaults.reload_interval_seconds, float),
            max_batch=number("MAX_BATCH", defaults.max_batch, int),
            max_text_chars=number("MAX_TEXT_CHARS", defaults.max_text_chars, int),
            max_body_bytes=number("MAX_BODY_BYTES", defaults.max_body_bytes, int),
        )


# --------------------------------------------------------------------------------------------
# Request bodies.


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _bad(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _text_item(value: Any, where: str) -> str:
    if isinstance(value, dict):
        if "text" not in value:
            raise _bad(422, f"{where} has no 'text' field")
        value = value["text"]
        where = f"{where}.text"
    if not isinstance(value, str):
        raise _bad(422, f"{where} must be a string, got {_json_type(value)}")
    return value


def _check_size(n: int, max_batch: int) -> None:
    if n == 0:
        raise _bad(422, "no texts to score: the batch is empty")
    if n > max_batch:
        raise _bad(413, f"batch of {n} texts is larger than MAX_BATCH={max_batch}; split it into smaller requests")


def extract_texts(payload: Any, max_batch: int) -> list[str]:
    """The texts of an MLflow-style scoring body, or an HTTPException (4xx) saying what is wrong."""
    if not isinstance(payload, dict):
        raise _bad(422, f"body must be a JSON object with one of {', '.join(INPUT_KEYS)}, got {_json_type(payload)}")
    present = [k for k in INPUT_KEYS if k in payload]
    if len(present) != 1:
        got = ", ".join(sorted(payload)[:10]) or "none"
        raise _bad(422, f"body must have exactly one of {', '.join(INPUT_KEYS)}; got keys {got}")
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise _bad(422, f"dataframe_split must be an object with 'columns' and 'data', got {_json_type(value)}")
        columns, data = value.get("columns"), value.get("data")
        if not isinstance(columns, list) or "text" not in columns:
            raise _bad(422, "dataframe_split.columns must be a list that contains 'text'")
        if not isinstance(data, list):
            raise _bad(422, f"dataframe_split.data must be a list of rows, got {_json_type(data)}")
        _check_size(len(data), max_batch)
        col = columns.index("text")
        texts = []
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise _bad(422, f"dataframe_split.data[{i}] must be a list of {len(columns)} values (one per column)")
            texts.append(_text_item(row[col], f"dataframe_split.data[{i}][{col}]"))
        return texts
    if key == "inputs" and isinstance(value, dict):  # MLflow's column form: {"inputs": {"text": [...]}}
        if "text" not in value or not isinstance(value["text"], list):
            raise _bad(422, "inputs as an object must map 'text' to a list of strings")
        value = value["text"]
    if not isinstance(value, list):
        raise _bad(422, f"{key} must be a list, got {_json_type(value)}")
    _check_size(len(value), max_batch)
    return [_text_item(item, f"{key}[{i}]") for i, item in enumerate(value)]


# --------------------------------------------------------------------------------------------
# Metrics.


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
    def __init__(self, watcher: ModelWatcher[SparkFreeModel]) -> None:
        # One registry per app, so several apps (tests) can live in one process.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sentiment_online_requests",
            "HTTP requests by endpoint, method and status",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sentiment_online_request_duration_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.predictions = Counter(
            "sentiment_online_predictions", "Predictions returned, by class", ["sentiment"], registry=self.registry
        )
        self.batch_size = Histogram(
            "sentiment_online_batch_texts",
            "Texts per scoring request",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            registry=self.registry,
        )
        self.reload_requests = Counter(
            "sentiment_online_reload_requests",
            "POST /reload outcomes (changed, unchanged, rejected, error)",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(_WatcherCollector(watcher))
        for sentiment in ("negative", "positive"):  # export zeros from the start
            self.predictions.labels(sentiment)

    def observe_predictions(self, predictions: list[Prediction]) -> None:
        positives = sum(p.label for p in predictions)
        if positives:
            self.predictions.labels("positive").inc(positives)
        if len(predictions) - positives:
            self.predictions.labels("negative").inc(len(predictions) - positives)
        self.batch_size.observe(len(predictions))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class MetricsMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): counts every response by status and times it."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
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


# --------------------------------------------------------------------------------------------
# The server.


def smoke_check(model: SparkFreeModel) -> None:
    """A candidate must score a few texts sanely before it may serve."""
    for pred in model.predict(SMOKE_TEXTS):
        if pred.label not in (0, 1):
            raise ValueError(f"smoke check: label {pred.label!r} is not 0 or 1")
        p = pred.probability
        if p is not None and not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ValueError(f"smoke check: probability {p!r} is not in [0, 1]")


def prediction_json(pred: Prediction) -> dict[str, Any]:
    return {"label": pred.label, "sentiment": pred.sentiment, "probability": pred.probability}


class OnlineServer:
    """State behind the app: the watcher (which holds the serving model) and the metrics."""

    def __init__(self, config: ServerConfig, watcher: ModelWatcher[SparkFreeModel] | None = None) -> None:
        self.config = config
        self.watcher: ModelWatcher[SparkFreeModel] = watcher or ModelWatcher(
            tracking_uri=config.tracking_uri,
            name=config.model_name,
            stage_or_alias=config.model_ref,
            loader=lambda uri: load_model(uri, config.tracking_uri),
            smoke_check=smoke_check,
            poll_seconds=config.reload_interval_seconds or 300.0,
        )
        self.metrics = ServerMetrics(self.watcher)
        self.last_error: str | None = None
        self._bootstrap: threading.Thread | None = None

    # Lifecycle. The first load runs in a thread so /health answers (503) while it happens.
    def start(self) -> None:
        self._bootstrap = threading.Thread(target=self._initial_load, name="online-server-bootstrap", daemon=True)
        self._bootstrap.start()

    def _initial_load(self) -> None:
        try:
            self.watcher.load_initial(retries=5, delay=2.0)
            self.last_error = None
        except Exception as exc:  # registry down or no usable version yet: keep answering 503
            self.last_error = _one_line(exc)
            log.error("no model loaded at start-up (%s); polling and POST /reload keep trying", self.last_error)
        if self.config.reload_interval_seconds > 0:
            self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def current(self) -> LoadedModel[SparkFreeModel]:
        loaded = self.watcher.current
        if loaded is None:
            raise _bad(503, f"no model loaded yet for {self.config.model_uri}" + self._error_suffix())
        return loaded

    def _error_suffix(self) -> str:
        return f" (last error: {self.last_error})" if self.last_error else ""

    def score(self, texts: list[str]) -> tuple[LoadedModel[SparkFreeModel], list[Prediction]]:
        loaded = self.current()  # this request keeps this model object even if a swap happens now
        predictions = loaded.model.predict(texts)
        self.metrics.observe_predictions(predictions)
        return loaded, predictions

    def reload(self, retry_rejected: bool = False) -> dict[str, Any]:
        stats = self.watcher.stats
        if retry_rejected:
            self.watcher.forget_rejected()
        rejected_before = dict(stats.rejected_versions)
        try:
            old, new, changed = self.watcher.check_once()
        except LookupError as exc:  # the alias/stage/version does not exist (yet)
            self.last_error = _one_line(exc)
            self.metrics.reload_requests.labels("error").inc()
            raise _bad(404, f"{self.last_error}; still serving {self._serving()}") from exc
        except Exception as exc:  # registry unreachable, or the first version failed to load
            self.last_error = _one_line(exc)
            self.metrics.reload_requests.labels("error").inc()
            raise _bad(503, f"reload failed: {self.last_error}; still serving {self._serving()}") from exc
        newly_rejected = {v: r for v, r in stats.rejected_versions.items() if v not in rejected_before}
        result = "changed" if changed else ("rejected" if newly_rejected else "unchanged")
        cur = self.watcher.current
        if cur is None:  # the registry's version was rejected before and nothing else ever loaded
            self.metrics.reload_requests.labels("error").inc()
            raise _bad(
                503,
                f"no usable version: rejected {stats.rejected_versions}; "
                "register a working version or retry with ?retry_rejected=true",
            )
        self.metrics.reload_requests.labels(result).inc()
        if changed:
            self.last_error = None
        return {
            "old_version": old,
            "new_version": new,
            "changed": changed,
            "serving_version": cur.version,
            "rejected": newly_rejected,
            "rejected_versions": dict(stats.rejected_versions),
        }

    def _serving(self) -> str:
        cur = self.watcher.current
        return f"v{cur.version}" if cur else "nothing"

    def info(self) -> dict[str, Any]:
        cur = self.watcher.current
        described = self.watcher.describe()
        return {
            "name": self.watcher.name,
            "version": described["version"],
            "alias": self.watcher.alias,
            "run_id": described["run_id"],
            "loaded_at": described["loaded_at"],
            "serving_uri": described["uri"],
            "model_uri": self.config.model_uri,
            "tracking_uri": self.config.tracking_uri,
            **(cur.model.describe() if cur else {"model_type": None}),
            "reloads": described["reloads"],
            "reload_failures": described["reload_failures"],
            "registry_errors": described["registry_errors"],
            "rejected_versions": described["rejected_versions"],
            "last_check_at": self.watcher.stats.last_check_at,
            "last_error": self.last_error,
            "reload_interval_seconds": self.config.reload_interval_seconds,
            "max_batch": self.config.max_batch,
            "max_text_chars": self.config.max_text_chars,
        }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


async def _json_body(request: Request, config: ServerConfig) -> Any:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise _bad(415, f"content type {content_type!r} is not supported; send application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > config.max_body_bytes:
        raise _bad(413, f"body of {declared} bytes is larger than MAX_BODY_BYTES={config.max_body_bytes}")
    body = await request.body()
    if len(body) > config.max_body_bytes:
        raise _bad(413, f"body of {len(body)} bytes is larger than MAX_BODY_BYTES={config.max_body_bytes}")
    if not body.strip():
        raise _bad(400, "empty body: send a JSON object")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(400, f"body is not valid JSON: {exc}") from exc


def _check_lengths(texts: list[str], limit: int) -> None:
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise _bad(413, f"text {i} has {len(text)} characters, more than MAX_TEXT_CHARS={limit}")


def create_app(config: ServerConfig, server: OnlineServer | None = None, start: bool = True) -> FastAPI:
    """The FastAPI app. `start=False` leaves model loading to the caller (tests drive the watcher)."""
    state = server or OnlineServer(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        if start:
            state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(
        title="Sentiment online model server",
        description="Spark-free predictions from the MLflow-registered Spark pipeline.",
        version="1",
        lifespan=lifespan,
    )
    app.state.server = state

    def health_body() -> tuple[int, dict[str, Any]]:
        cur = state.watcher.current
        body: dict[str, Any] = {
            "status": "ok" if cur else "unavailable",
            "model_name": state.watcher.name,
            "model_uri": config.model_uri,
            "model_version": cur.version if cur else None,
        }
        if cur is None:
            body["detail"] = state.last_error or "loading the model"
        return (200 if cur else 503), body

    @app.get("/health")
    def health() -> JSONResponse:
        status, body = health_body()
        return JSONResponse(body, status_code=status)

    @app.get("/ping")  # the path MLflow's scoring server answers
    def ping() -> JSONResponse:
        status, body = health_body()
        return JSONResponse(body, status_code=status)

    @app.get("/info")
    def info() -> JSONResponse:
        body = state.info()
        return JSONResponse(body, status_code=200 if body["version"] else 503)

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        payload = await _json_body(request, config)
        texts = extract_texts(payload, config.max_batch)
        _check_lengths(texts, config.max_text_chars)
        # Scoring is CPU work: run it off the event loop so /health stays responsive.
        loaded, predictions = await run_in_threadpool(state.score, texts)
        return JSONResponse(
            {"predictions": [prediction_json(p) for p in predictions]}, headers={"X-Model-Version": loaded.version}
        )

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        payload = await _json_body(request, config)
        if not isinstance(payload, dict):
            raise _bad(422, f'body must be a JSON object {{"text": "..."}}, got {_json_type(payload)}')
        if "text" not in payload:
            raise _bad(422, 'missing field "text": send {"text": "..."}')
        text = _text_item(payload["text"], "text")
        _check_lengths([text], config.max_text_chars)
        loaded, (pred,) = await run_in_threadpool(state.score, [text])
        return JSONResponse(
            {
                "sentiment": pred.sentiment,
                "label": pred.label,
                "probability": pred.probability,
                "model_name": loaded.name,
                "model_version": loaded.version,
            },
            headers={"X-Model-Version": loaded.version},
        )

    @app.post("/reload")
    async def reload(retry_rejected: bool = False) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(state.reload, retry_rejected))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Online sentiment model server (FastAPI, no Spark). Settings come from the environment.",
        epilog=__doc__.split("Endpoints", 1)[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = ServerConfig.from_env()
    except ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    # A progress bar per model download is noise in a server log. MLflow's client retries a dead
    # registry 7 times (~4 minutes) per call; a server that polls again anyway should give up
    # sooner, so POST /reload answers in seconds. Explicit settings in the environment win.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    prefer_fast_registry_failures()
    import uvicorn

    log.info(
        "serving %s from %s on http://%s:%d (registry poll: %s, max batch %d)",
        config.model_uri,
        config.tracking_uri,
        config.host,
        config.port,
        f"every {config.reload_interval_seconds:g}s" if config.reload_interval_seconds else "off, POST /reload only",
        config.max_batch,
    )
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        access_log=False,  # per-request counts and latencies are in /metrics
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
