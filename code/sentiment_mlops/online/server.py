"""Online model server: REST predictions from the registered Spark model, without Spark.

Start it with one command (every setting is an environment variable):

    MODEL_URI=models:/twitter-sentiment-model-best@production \\
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \\
    python -m sentiment_mlops.online.server

    MODEL_URI                 models:/NAME@alias, models:/NAME/Stage or models:/NAME/VERSION
                              (default models:/MODEL_NAME@production if MODEL_NAME is set, else
                              models:/twitter-sentiment-model-best@production)
    MODEL_NAME                the model name responses report (default: the registered name)
    MLFLOW_TRACKING_URI       tracking and registry server (default http://127.0.0.1:5000)
    MLFLOW_TRACKING_USERNAME / _PASSWORD (or MLFLOW_TRACKING_TOKEN)   MLflow's own credentials, for a
                              server with authentication (the production profile); read by MLflow
    HOST, PORT                where to listen (default 127.0.0.1, 8000)
    RELOAD_INTERVAL_SECONDS   how often to ask the registry for a new version (default 300;
                              0 = only on POST /reload)
    RELOAD_WAIT_SECONDS       how long POST /reload waits for its result before answering 202 (60)
    MAX_BATCH                 most texts in one /invocations request (default 1000)
    MAX_TEXT_CHARS            longest accepted text (default 10000 characters)
    MAX_BODY_BYTES            largest accepted request body, counted as it streams (default 10485760)
    HEADER_TIMEOUT_SECONDS    a connection must send its request headers within this (default 10)
    BODY_TIMEOUT_SECONDS      ... and its body within this (default 30)
    KEEP_ALIVE_SECONDS        idle keep-alive connections are closed after this (default 5)
    LOG_LEVEL                 default INFO
    MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT   default here 2 retries / 30 s (MLflow's own: 7 / 120)

Endpoints
    GET  /health       200 {"status": "healthy", "model_name", "model_uri", "model_version"} once a
                       model serves; 503 {"status": "unhealthy", "reason", ...} until then (also /ping)
    GET  /info         {"model_name", "model_uri", "metadata": {"version", "stage", "run_id", "status",
                       "loaded_at", ...}, "status": "loaded"} plus run id, model type, reload state
    POST /invocations  MLflow scoring bodies: {"dataframe_split": {"columns": ["text"], "data": [[..]]}},
                       {"dataframe_records": [{"text": ..}]}, {"instances": [str | {"text": str}]} or
                       {"inputs": [...]} -> {"predictions": ["positive", ...], "details": [{"label",
                       "sentiment", "probability", "confidence"}], "model_version"}
    POST /predict      {"text": "..."} -> {"sentiment", "confidence", "probability", "label",
                       "model_name", "model_version"}
    POST /reload       ask the registry now -> {"status": "success", "message", "model_uri",
                       "old_version", "new_version", "version_changed", "serving_version", ...};
                       409 while another reload runs, 202 if it outlasts RELOAD_WAIT_SECONDS
                       (?retry_rejected=true also retries versions rejected earlier)
    GET  /metrics      Prometheus text format

`probability` is P(positive) as Spark computes it (probability[1]); `confidence` is the probability
of the predicted class. Both are null for a LinearSVC model, which has no probability. Empty or
blank texts are refused (422), as the streaming job quarantines them. Prediction responses carry
the header X-Model-Version.

The model is loaded by :mod:`sentiment_mlops.online.model` (pure Python, same numbers as Spark)
and kept current by the shared :class:`~sentiment_mlops.registry.model_watcher.ModelWatcher`: a
new version is loaded and smoke-tested off the request path and swapped in with one assignment;
a request keeps the model object it started with; a version that fails to load is rejected and
the old one keeps serving. Modules: `config` (settings), `protocol` (bodies in and out),
`metrics`, `state` (model, reloads), `app` (routes), this one (the process).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from sentiment_mlops.online.app import create_app
from sentiment_mlops.online.config import ConfigError, ServerConfig
from sentiment_mlops.registry.model_watcher import prefer_fast_registry_failures

log = logging.getLogger("sentiment_mlops.online.server")

__all__ = ["ConfigError", "ServerConfig", "create_app", "main"]


def header_timeout_protocol(header_timeout: float) -> type:
    """uvicorn's HTTP protocol class with a deadline for request headers.

    uvicorn times out idle keep-alive connections but not a connection that opened and then
    sends its headers slowly (or never): enough of those hold every connection. This closes a
    connection whose next request has not started within `header_timeout` seconds."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools is optional; h11 always ships with uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class HeaderTimeoutProtocol(Base):
        _header_timer: asyncio.TimerHandle | None = None
        _waiting_for: Any = None  # the cycle that was current when the timer was armed

        def _arm(self) -> None:
            self._disarm()
            self._waiting_for = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            if self.cycle is self._waiting_for and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._waiting_for:
                self._disarm()  # the headers of a new request are in

        def on_response_complete(self) -> None:
            if not self.transport.is_closing():
                self._arm()  # before super(): it may start a pipelined request at once
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted; 2 on a bad setting."""
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
    # sooner. Explicit settings in the environment win.
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
        http=header_timeout_protocol(config.header_timeout_seconds),
        timeout_keep_alive=max(1, round(config.keep_alive_seconds)),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        access_log=False,  # per-request counts and latencies are in /metrics
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
