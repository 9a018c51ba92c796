"""The FastAPI app: routes built from :mod:`protocol` over the :class:`~state.OnlineServer` state.

Scoring is CPU work and runs in the thread pool so the event loop keeps answering /health; a
request keeps the model object it started with even if a swap happens meanwhile. POST /reload
only awaits the background reload (see :mod:`state`), so it never takes a pool thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from sentiment_mlops.online import protocol
from sentiment_mlops.online.config import ServerConfig
from sentiment_mlops.online.metrics import MetricsMiddleware
from sentiment_mlops.online.state import NoModelError, OnlineServer


def create_app(config: ServerConfig, server: OnlineServer | None = None, start: bool = True) -> FastAPI:
    """The FastAPI app. `start=False` leaves model loading to the caller (tests drive the watcher)."""
    state = server or OnlineServer(config)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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

    @app.exception_handler(NoModelError)
    async def no_model(_request: Request, exc: NoModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    _add_status_routes(app, state)
    _add_scoring_routes(app, state)
    _add_reload_route(app, state)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def _health(state: OnlineServer) -> JSONResponse:
    cur = state.watcher.current
    body: dict[str, Any] = {
        "status": "healthy" if cur else "unhealthy",
        "model_name": state.config.reported_name,
        "model_uri": state.config.model_uri,
        "model_version": cur.version if cur else None,
    }
    if cur is None:
        body["reason"] = state.last_error or "loading the model"
    return JSONResponse(body, status_code=200 if cur else 503)


def _add_status_routes(app: FastAPI, state: OnlineServer) -> None:
    # async: cheap reads that must answer even when every pool thread is busy scoring.
    @app.get("/health")
    async def health() -> JSONResponse:
        return _health(state)

    @app.get("/ping")  # the path MLflow's scoring server answers
    async def ping() -> JSONResponse:
        return _health(state)

    @app.get("/info")
    async def info() -> JSONResponse:
        body = state.info()
        return JSONResponse(body, status_code=200 if body["version"] else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _add_scoring_routes(app: FastAPI, state: OnlineServer) -> None:
    config = state.config

    async def body_of(request: Request) -> Any:
        return await protocol.json_body(request, config.max_body_bytes, config.body_timeout_seconds)

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        texts = protocol.extract_texts(await body_of(request), config.max_batch)
        protocol.check_texts(texts, config.max_text_chars)
        loaded, predictions = await run_in_threadpool(state.score, texts)
        headers = {"X-Model-Version": loaded.version}
        return JSONResponse(protocol.invocations_body(predictions, loaded.version), headers=headers)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        text = protocol.extract_text(await body_of(request))
        protocol.check_texts([text], config.max_text_chars)
        loaded, (pred,) = await run_in_threadpool(state.score, [text])
        body = protocol.predict_body(pred, config.reported_name, loaded.version)
        return JSONResponse(body, headers={"X-Model-Version": loaded.version})


def _add_reload_route(app: FastAPI, state: OnlineServer) -> None:
    @app.post("/reload")
    async def reload(retry_rejected: bool = False) -> JSONResponse:
        job = state.start_reload(retry_rejected)
        cur = state.watcher.current
        common = {"model_uri": state.config.model_uri, "serving_version": cur.version if cur else None}
        if job is None:
            state.metrics.reload_requests.labels("busy").inc()
            detail = "a reload is already running; retry when it has finished (see GET /info 'reload')"
            body = {"status": "in_progress", "detail": detail, "reload": state.reload_state(), **common}
            return JSONResponse(body, status_code=409)
        try:
            # shield: a client that gives up does not cancel the reload, only its wait.
            outcome = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(job.future)), state.config.reload_wait_seconds
            )
        except TimeoutError:
            detail = f"reload still running after {state.config.reload_wait_seconds:g}s; see GET /info 'reload'"
            body = {"status": "in_progress", "detail": detail, "reload": job.describe(), **common}
            return JSONResponse(body, status_code=202)
        return JSONResponse(outcome.body, status_code=outcome.status)
