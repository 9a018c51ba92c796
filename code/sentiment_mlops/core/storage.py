"""Storage URIs: the one place that turns `gs://BUCKET/path` into what a backend can open.

On the dataproc backend a `gs://` URI stays as it is (Spark and the GCS connector read it).
On the local backend each bucket is a folder under `Settings.bucket_root`, so the same job
arguments work on both backends.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from sentiment_mlops.core.settings import Settings, load_settings

GCS_SCHEME = "gs"
# Cloud Storage bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits, "-", "_"
# and ".", starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{1,220})[a-z0-9]")


def _check_object_path(uri: str, path: str) -> None:
    # On the local backend an object path becomes a file path: "." and ".." segments would leave the
    # bucket's folder, and "?"/"#" would be silently cut off by URL parsing.
    if any(ch in path for ch in "?#\x00\r\n"):
        raise ValueError(
            f"gs:// URI has a character not allowed in an object path (? # or a control character): {uri!r}"
        )
    if any(seg in (".", "..") for seg in path.split("/")):
        raise ValueError(f"gs:// URI has a '.' or '..' path segment: {uri!r}")


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/a/b` -> (`bucket`, `a/b`).

    Strict: raises ValueError for another scheme, an invalid bucket name, `.`/`..` segments, `?`, `#` or
    control characters, so a resolved local path always stays inside its bucket's folder.
    """
    prefix = f"{GCS_SCHEME}://"
    if not uri.startswith(prefix):
        raise ValueError(f"not a gs:// URI: {uri!r}")
    bucket, _, path = uri[len(prefix) :].partition("/")
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket or (len(bucket) > 63 and "." not in bucket):
        raise ValueError(f"not a valid Cloud Storage bucket name in {uri!r}")
    _check_object_path(uri, path)
    return bucket, path.lstrip("/")


def is_gcs_uri(uri: str) -> bool:
    return uri.startswith(f"{GCS_SCHEME}://")


def resolve_uri(uri: str, settings: Settings | None = None) -> str:
    """The URI a job should open on this backend.

    local: `gs://b/p` -> `/ROOT/b/p`; `file:///x` -> `/x`; plain paths unchanged.
    dataproc, dataproc-serverless: unchanged.
    """
    settings = settings or load_settings()
    if settings.backend != "local":
        return uri
    if is_gcs_uri(uri):
        bucket, path = split_gcs_uri(uri)
        folder = settings.bucket_root / bucket
        resolved = (folder / path).resolve() if path else folder.resolve()
        if not resolved.is_relative_to(folder.resolve()):  # a symlink inside the bucket pointing out
            raise ValueError(f"{uri!r} resolves outside the bucket folder {folder}")
        return str(folder / path) if path else str(folder)
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
