"""gs:// URIs are parsed strictly, and on the local backend a resolved path never leaves its bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_mlops.core.settings import load_settings
from sentiment_mlops.core.storage import resolve_uri, split_gcs_uri


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SENTIMENT_BUCKET_ROOT", str(tmp_path / "buckets"))
    return load_settings("local")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://my-bucket/a/b.csv", ("my-bucket", "a/b.csv")),
        ("gs://my-bucket", ("my-bucket", "")),
        ("gs://my-bucket/", ("my-bucket", "")),
        ("gs://abc/incoming/*.csv", ("abc", "incoming/*.csv")),
        ("gs://a.b_c-d/x", ("a.b_c-d", "x")),
    ],
)
def test_valid_uris_split(uri: str, expected: tuple[str, str]) -> None:
    assert split_gcs_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "gs://bucket/../../etc/passwd",
        "gs://bucket/a/../../b",
        "gs://bucket/./a",
        "gs://bucket/a?b",
        "gs://bucket/a#b",
        "gs://bucket/a\nb",
        "gs://..",
        "gs://Bucket/a",  # upper case is not a bucket name
        "gs://ab/a",  # too short
        "gs://-bucket/a",
        "gs://bucket-/a",
        "gs://bu..cket/a",
        "gs://" + "b" * 64 + "/a",
        "s3://bucket/a",
        "gs:/bucket/a",
    ],
)
def test_hostile_or_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        split_gcs_uri(uri)


def test_traversal_never_resolves_outside_the_bucket_root(local) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        resolve_uri("gs://bucket/../../etc/passwd", local)
    assert resolve_uri("gs://bucket/in/x.csv", local) == str(local.bucket_root / "bucket" / "in" / "x.csv")


def test_a_symlink_out_of_the_bucket_is_refused(local, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read")
    bucket = local.bucket_root / "bucket"
    bucket.mkdir(parents=True)
    (bucket / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the bucket"):
        resolve_uri("gs://bucket/link/secret.txt", local)


@pytest.mark.parametrize("backend", ["dataproc", "dataproc-serverless"])
def test_gcs_uris_stay_gcs_on_both_dataproc_backends(backend: str) -> None:
    # A job on a Serverless batch reads real GCS: mapping to local folders would find nothing.
    assert resolve_uri("gs://bucket/in/x.csv", load_settings(backend)) == "gs://bucket/in/x.csv"
