"""Storage URIs: the one place that turns `gs://BUCKET/path` into what a backend can open.

On the dataproc backend a `gs://` URI stays as it is (Spark and the GCS connector read it).
On the local backend each bucket is a folder under `Settings.bucket_root`, so the same job
arguments work on both backends.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from sentiment_mlops.core.settings import Settings, load_settings

GCS_SCHEME = "gs"


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/a/b` -> (`bucket`, `a/b`). Raises ValueError on anything else."""
    parsed = urlparse(uri)
    if parsed.scheme != GCS_SCHEME or not parsed.netloc:
        raise ValueError(f"not a gs:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def is_gcs_uri(uri: str) -> bool:
    return uri.startswith(f"{GCS_SCHEME}://")


def resolve_uri(uri: str, settings: Settings | None = None) -> str:
    """The URI a job should open on this backend.

    local: `gs://b/p` -> `/ROOT/b/p`; `file:///x` -> `/x`; plain paths unchanged.
    dataproc: unchanged.
    """
    settings = settings or load_settings()
    if settings.backend == "dataproc":
        return uri
    if is_gcs_uri(uri):
        bucket, path = split_gcs_uri(uri)
        return str(settings.bucket_root / bucket / path) if path else str(settings.bucket_root / bucket)
    if uri.startswith("file://"):
        return urlparse(uri).path
    return uri


def local_path(uri: str, settings: Settings | None = None) -> Path:
    """A local filesystem path for `uri`; only meaningful on the local backend."""
    resolved = resolve_uri(uri, settings)
    if "://" in resolved:
        raise ValueError(f"{uri!r} is not a local path on the {(settings or load_settings()).backend} backend")
    return Path(resolved)


def join_uri(base: str, *parts: str) -> str:
    """Join path segments onto a URI or path without doubling slashes."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out
