"""Generated secrets on disk: one value a file, the file 0600 in a folder 0700, created once and read
back afterwards. The production profile's passwords live here, never in code, arguments or logs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, from the first byte (no chmod-after window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_secret(path: Path) -> str:
    """The secret in `path`; a clear error when it is missing or readable by others."""
    try:
        mode = path.stat().st_mode & 0o777
        value = path.read_text().strip()
    except FileNotFoundError:
        raise FileNotFoundError(f"secret file {path} does not exist (set up the production profile first)") from None
    if mode & 0o077:
        raise PermissionError(f"secret file {path} has mode {mode:o}; it must be readable by its owner only (0600)")
    if not value:
        raise ValueError(f"secret file {path} is empty")
    return value


def read_or_create_secret(path: Path, nbytes: int = 24) -> str:
    """The secret in `path`, generated (URL-safe, no characters that need quoting) on first use."""
    if not path.exists():
        write_private(path, secrets.token_urlsafe(nbytes) + "\n")
    return read_secret(path)
