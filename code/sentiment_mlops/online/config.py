"""Server settings, all from environment variables (see `python -m sentiment_mlops.online.server --help`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentiment_mlops.core.errors import ConfigError
from sentiment_mlops.core.settings import DEFAULT_MLFLOW_PORT, DEFAULT_REGISTERED_MODEL_NAME, PRODUCTION_ALIAS
from sentiment_mlops.registry import lookups as registry

DEFAULT_MODEL_URI = registry.model_uri(
    registry.registered_name(DEFAULT_REGISTERED_MODEL_NAME, registry.BEST_SUFFIX), PRODUCTION_ALIAS
)
# The documented default. Never left to MLflow: with no tracking URI MLflow 3 falls back to a
# ./mlflow.db SQLite file, which would silently serve an empty registry from the working directory.
DEFAULT_TRACKING_URI = f"http://127.0.0.1:{DEFAULT_MLFLOW_PORT}"


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
    tracking_uri: str = DEFAULT_TRACKING_URI
    host: str = "127.0.0.1"
    port: int = 8000
    reload_interval_seconds: float = 300.0
    max_batch: int = 1000
    max_text_chars: int = 10_000
    max_body_bytes: int = 10 * 1024 * 1024
    display_name: str = ""  # MODEL_NAME: the name responses report (default: the registered name)
    # Slow clients: headers must arrive within this, a body within body_timeout, and an idle
    # keep-alive connection is closed after keep_alive; together they bound how long one
    # connection can be held without doing work.
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    keep_alive_seconds: float = 5.0
    reload_wait_seconds: float = 60.0  # how long POST /reload waits for its result before 202

    def __post_init__(self) -> None:
        parse_model_uri(self.model_uri)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"PORT must be 0-65535, got {self.port}")
        if self.reload_interval_seconds < 0 or not math.isfinite(self.reload_interval_seconds):
            raise ConfigError(f"RELOAD_INTERVAL_SECONDS must be >= 0, got {self.reload_interval_seconds}")
        for name in ("max_batch", "max_text_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.upper()} must be at least 1, got {getattr(self, name)}")
        for name in ("header_timeout_seconds", "body_timeout_seconds", "keep_alive_seconds", "reload_wait_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name.upper()} must be a positive number, got {value}")

    @property
    def model_name(self) -> str:
        """The registered model name (from MODEL_URI)."""
        return parse_model_uri(self.model_uri)[0]

    @property
    def model_ref(self) -> str:
        return parse_model_uri(self.model_uri)[1]

    @property
    def reported_name(self) -> str:
        return self.display_name or self.model_name

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerConfig:
        """Settings from `env` (default os.environ); raises ConfigError naming the bad variable."""
        env = os.environ if env is None else env
        defaults = cls()

        def text(key: str, default: str) -> str:
            return env.get(key, "").strip() or default

        def number(key: str, default: float, kind: type) -> Any:
            raw = env.get(key, "").strip()
            if not raw:
                return default
            try:
                return kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from exc

        display_name = text("MODEL_NAME", "")
        # MODEL_NAME alone (the reference server's setting) serves that name's @production.
        default_uri = registry.model_uri(display_name, PRODUCTION_ALIAS) if display_name else defaults.model_uri
        return cls(
            model_uri=text("MODEL_URI", default_uri),
            tracking_uri=text("MLFLOW_TRACKING_URI", defaults.tracking_uri),
            host=text("HOST", defaults.host),
            port=number("PORT", defaults.port, int),
            reload_interval_seconds=number("RELOAD_INTERVAL_SECONDS", defaults.reload_interval_seconds, float),
            max_batch=number("MAX_BATCH", defaults.max_batch, int),
            max_text_chars=number("MAX_TEXT_CHARS", defaults.max_text_chars, int),
            max_body_bytes=number("MAX_BODY_BYTES", defaults.max_body_bytes, int),
            display_name=display_name,
            header_timeout_seconds=number("HEADER_TIMEOUT_SECONDS", defaults.header_timeout_seconds, float),
            body_timeout_seconds=number("BODY_TIMEOUT_SECONDS", defaults.body_timeout_seconds, float),
            keep_alive_seconds=number("KEEP_ALIVE_SECONDS", defaults.keep_alive_seconds, float),
            reload_wait_seconds=number("RELOAD_WAIT_SECONDS", defaults.reload_wait_seconds, float),
        )
