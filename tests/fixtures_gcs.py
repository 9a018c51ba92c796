"""A real GCS API on localhost (gcp-storage-emulator, in memory, in this process) and a
google-cloud-storage client pointed at it.

Import them into a test module with
`from tests.fixtures_gcs import gcs_client_fixture, gcs_emulator_fixture  # noqa: F401`;
they are named `gcs_emulator` (its URL) and `gcs` (the client).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", name="gcs_emulator")
def gcs_emulator_fixture() -> Iterator[str]:
    """gcp-storage-emulator in memory, in this process; yields its URL."""
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(name="gcs")
def gcs_client_fixture(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A `google.cloud.storage.Client` of project `test` talking to the emulator."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())
