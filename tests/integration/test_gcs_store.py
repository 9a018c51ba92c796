"""GcsStore (backends.gcp.gcs_store) against a real GCS API, the emulator: listing, whole and ranged
reads (the driver-log tail reads only the end of an object), writes, uploads, seekable input and
modification times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sentiment_mlops.backends.gcp.gcs_store import GcsStore
from tests.fixtures_gcs import gcs_client_fixture, gcs_emulator_fixture  # noqa: F401

pytestmark = pytest.mark.integration

DATA = bytes(range(256)) * 40  # 10,240 bytes, every offset distinguishable


@pytest.fixture()
def b(gcs: Any, request: pytest.FixtureRequest) -> str:
    """A new bucket for this test."""
    name = f"store-{abs(hash(request.node.name)) % 10**8}"
    gcs.create_bucket(name)
    return name


@pytest.fixture()
def store(gcs: Any) -> GcsStore:
    return GcsStore(gcs)


def test_whole_and_ranged_reads_return_exactly_the_bytes_asked_for(store: GcsStore, b: str) -> None:
    uri = f"gs://{b}/logs/driveroutput.000000001"
    assert store.write_bytes(uri, DATA) == uri
    assert store.read_bytes(uri) == DATA
    assert store.read_bytes(uri, start=100) == DATA[100:]
    assert store.read_bytes(uri, start=100, length=1) == DATA[100:101]
    assert store.read_bytes(uri, start=0, length=10) == DATA[:10]
    assert store.read_bytes(uri, start=len(DATA) - 7, length=7) == DATA[-7:]
    # a range past the end is cut at the end, as GCS does
    assert store.read_bytes(uri, start=len(DATA) - 3, length=100) == DATA[-3:]


def test_listing_skips_hidden_and_underscore_parts_and_reports_sizes(store: GcsStore, b: str) -> None:
    for name, size in [
        ("out/a.json", 3),
        ("out/sub/b.json", 5),
        ("out/_SUCCESS", 0),
        ("out/.tmp/c", 1),
        ("outer/x", 2),
    ]:
        store.write_bytes(f"gs://{b}/{name}", b"x" * size)
    assert sorted(store.list_files(f"gs://{b}/out")) == [(f"gs://{b}/out/a.json", 3), (f"gs://{b}/out/sub/b.json", 5)]
    assert store.list_files(f"gs://{b}/out/a.json") == [(f"gs://{b}/out/a.json", 3)]  # one object
    assert store.list_files(f"gs://{b}/nothing-here") == []


def test_upload_open_input_and_modified(store: GcsStore, b: str, tmp_path: Path) -> None:
    table = pa.table({"id": list(range(1000)), "text": [f"tweet {i}" for i in range(1000)]})
    local = tmp_path / "part-0.parquet"
    pq.write_table(table, local)
    uri = f"gs://{b}/predictions/part-0.parquet"
    assert store.upload_file(local, uri) == uri
    with store.open_input(uri) as f:  # seekable, as pyarrow needs for the footer
        assert pq.read_table(f).equals(table)
    assert store.modified(uri) > 0
    assert store.modified(f"gs://{b}/predictions/missing.parquet") == 0.0


def test_client_is_made_on_first_use_only(gcs: Any) -> None:
    made: list[int] = []

    def connect() -> Any:
        made.append(1)
        return gcs

    lazy = GcsStore(connect=connect)
    assert made == []
    gcs.create_bucket("lazy-bucket")
    lazy.write_bytes("gs://lazy-bucket/x", b"1")
    lazy.read_bytes("gs://lazy-bucket/x")
    assert made == [1]
    with pytest.raises(ValueError, match="storage client"):
        GcsStore()
