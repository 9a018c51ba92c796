"""The file interface the DAG tasks use, whatever holds the files (local bucket folders or GCS).

A Protocol, not a base class: :class:`sentiment_mlops.backends.local.store.LocalStore` and
:class:`sentiment_mlops.backends.gcp.gcs_store.GcsStore` implement it without importing each other,
and a test can pass any object with these methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol


class Store(Protocol):
    """Objects addressed by URI (`gs://bucket/path`, or a plain path on the local backend).

    Listings skip hidden and `_`/`.` entries the way Spark does (_SUCCESS, .crc files).
    """

    def list_files(self, uri: str) -> list[tuple[str, int]]:
        """`(uri, size in bytes)` of the file at `uri`, or of every file below the folder `uri`."""
        ...

    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes:
        """`length` bytes (default: to the end) from offset `start`."""
        ...

    def write_bytes(self, uri: str, data: bytes) -> str:
        """Write `data` as the whole object; returns `uri`."""
        ...

    def upload_file(self, path: Path, uri: str) -> str:
        """Copy the local file `path` to `uri`; returns `uri`."""
        ...

    def open_input(self, uri: str) -> BinaryIO:
        """A seekable binary handle (pyarrow reads only a Parquet footer through it)."""
        ...

    def modified(self, uri: str) -> float:
        """Last modification time, epoch seconds."""
        ...
