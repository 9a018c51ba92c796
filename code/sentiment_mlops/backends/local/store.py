"""Local bucket folders behind the :class:`~sentiment_mlops.core.store.Store` interface."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import BinaryIO

from sentiment_mlops.core.settings import Settings, load_settings
from sentiment_mlops.core.storage import join_uri, local_path


class LocalStore:
    """`gs://BUCKET/path` -> `Settings.bucket_root/BUCKET/path`; plain paths as they are."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings("local")

    def path(self, uri: str) -> Path:
        """The local file or folder behind `uri`."""
        return local_path(uri, self.settings)

    def list_files(self, uri: str) -> list[tuple[str, int]]:
        """Files at `uri` (a file, or everything below a folder), skipping hidden and `_`/`.` entries
        the way Spark does (_SUCCESS, .crc files)."""
        root = self.path(uri)
        if root.is_file():
            return [(uri, root.stat().st_size)]
        if not root.is_dir():
            return []
        out = []
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not any(part.startswith((".", "_")) for part in rel.parts):
                out.append((join_uri(uri, rel.as_posix()), path.stat().st_size))
        return out

    def read_bytes(self, uri: str, start: int = 0, length: int | None = None) -> bytes:
        with open(self.path(uri), "rb") as handle:
            handle.seek(start)
            return handle.read() if length is None else handle.read(length)

    def write_bytes(self, uri: str, data: bytes) -> str:
        path = self.path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return uri

    def upload_file(self, path: Path, uri: str) -> str:
        dest = self.path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        return uri

    def open_input(self, uri: str) -> BinaryIO:
        return open(self.path(uri), "rb")

    def modified(self, uri: str) -> float:
        return self.path(uri).stat().st_mtime
