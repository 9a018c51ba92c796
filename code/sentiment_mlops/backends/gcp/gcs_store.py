"""GCS behind the :class:`~sentiment_mlops.core.store.Store` interface.

The google-cloud-storage client comes from the caller (orchestration builds it from the Airflow
connection): backends never import Airflow. It may come as a factory, called on first use, so a
task that never touches GCS never needs credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from sentiment_mlops.core.storage import split_gcs_uri


class GcsStore:
    """Objects addressed as gs:// URIs through a `google.cloud.storage.Client` (or anything with its
    `bucket`/`list_blobs` methods). Pass `client`, or `connect`, a callable that returns one."""

    def __init__(self, client: Any = None, *, connect: Callable[[], Any] | None = None) -> None:
        if client is None and connect is None:
            raise ValueError("GcsStore needs a storage client or a callable that returns one")
        self._client = client
        self._connect = connect

    @property
    def client(self) -> Any:
        if self._client is None:
            assert self._connect is not None
            self._client = self._connect()
        return self._client

    def _blob(self, uri: str) -> Any:
        bucket, name = split_gcs_uri(uri)
        return self.client.bucket(bucket).blob(name)

    def list_files(self, uri: str) -> list[tuple[str, int]]:
        bucket, name = split_gcs_uri(uri)
        single = self.client.bucket(bucket).get_blob(name) if name else None
        if single is not None:
            return [(uri, int(single.size or 0))]
        prefix = f"{name.rstrip('/')}/" if name else ""
        out = []
        for blob in self.client.list_blobs(bucket, prefix=prefix):
            rel = blob.name[len(prefix) :]
            if rel and not blob.name.endswith("/") and not any(p.startswith((".", "_")) for p in rel.split("/")):
                out.append((f"gs://{bucket}/{blob.name}", int(blob.size or 0)))
        return out

    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes:
        end = None if length is None else start + length - 1  # inclusive in the GCS API
        return bytes(self._blob(uri).download_as_bytes(start=start, end=end))

    def write_bytes(self, uri: str, data: bytes) -> str:
        self._blob(uri).upload_from_string(data)
        return uri

    def upload_file(self, path: Path, uri: str) -> str:
        self._blob(uri).upload_from_filename(str(path))
        return uri

    def open_input(self, uri: str) -> BinaryIO:
        return self._blob(uri).open("rb")  # seekable: pyarrow reads only the Parquet footer

    def modified(self, uri: str) -> float:
        bucket, name = split_gcs_uri(uri)
        blob = self.client.bucket(bucket).get_blob(name)
        return blob.updated.timestamp() if blob is not None and blob.updated else 0.0
