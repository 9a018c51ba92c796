"""The demo's own data: Sentiment140 downloaded from a real HTTP server on 127.0.0.1 (a small zip
built here, Latin-1 like the real archive), verified, cached with its checksum, sampled balanced;
and the one error a user without network sees."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sentiment_mlops.backends.local import dataset

pytestmark = pytest.mark.integration
NEGATIVE, POSITIVE = 300, 500  # unbalanced on purpose: the sample must not be


def _row(i: int, polarity: int) -> list[str]:
    text = f'tweet {i} caf\xe9 na\xefve, "quoted"' if i % 7 == 0 else f"tweet {i} {'sad' if polarity == 0 else 'glad'}"
    return [str(polarity), str(1467810369 + i), "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", f"user{i}", text]


def _archive(path: Path, member: str = dataset.MEMBER) -> Path:
    rows = [_row(i, 0) for i in range(NEGATIVE)] + [_row(NEGATIVE + i, 4) for i in range(POSITIVE)]
    body = "".join(
        ",".join(f'"{v}"' if '"' not in v else '"' + v.replace('"', '""') + '"' for v in r) + "\r\n" for r in rows
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, body.encode("latin-1"))
        zf.writestr(
            "testdata.manual.2009.06.14.csv", '"4","3","Mon May 11 03:17:40 UTC 2009","kindle2","tpryan","ok"\r\n'
        )
    return path


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A real http.server on 127.0.0.1 serving tmp_path/www; yields (base URL, requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def _read(sample: Path) -> list[list[str]]:
    with sample.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def test_downloads_verifies_caches_and_samples_balanced(http_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    base, requests = http_server
    zip_path = _archive(tmp_path / "www" / dataset.ARCHIVE_NAME)
    monkeypatch.setenv(dataset.URL_ENV, f"{base}/{dataset.ARCHIVE_NAME}")
    home = tmp_path / "home"

    sample = dataset.ensure_sample(rows=400, home=home)
    rows = _read(sample)
    assert sample.parent == home / "datasets" / "sentiment140"
    assert len(rows) == 400 and all(len(r) == 2 for r in rows)
    assert sum(r[0] == "0" for r in rows) == 200 and sum(r[0] == "4" for r in rows) == 200
    assert any("caf\xe9 na\xefve" in r[1] for r in rows)  # Latin-1 decoded, written as UTF-8
    record = json.loads((sample.parent / "archive.json").read_text())
    assert record["sha256"] == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert record["source"].endswith(dataset.ARCHIVE_NAME) and requests == [f"/{dataset.ARCHIVE_NAME}"]

    # A later run uses the cache; another sample size reuses the verified archive.
    assert dataset.ensure_sample(rows=400, home=home) == sample
    assert len(_read(dataset.ensure_sample(rows=100, home=home))) == 100
    assert len(requests) == 1

    # A damaged cached archive no longer matches its recorded checksum and is fetched again.
    cached = sample.parent / dataset.ARCHIVE_NAME
    cached.write_bytes(cached.read_bytes()[:-10] + b"0123456789")
    assert len(_read(dataset.ensure_sample(rows=50, home=home))) == 50
    assert len(requests) == 2 and dataset.sha256_of(cached) == record["sha256"]


def test_the_cli_prints_the_sample_path(http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _requests = http_server
    _archive(tmp_path / "www" / "copy.zip")
    env = {"SENTIMENT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "sentiment_mlops.backends.local.dataset", "--rows", "600", "--url", f"{base}/copy.zip"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    sample = Path(proc.stdout.strip())
    rows = _read(sample)
    # only 300 negative tweets exist: all of them, and as many positive ones
    assert len(rows) == 600 and sum(r[0] == "0" for r in rows) == 300
    assert "sampled 300 negative and 300 positive" in proc.stderr


def test_offline_is_one_error_that_names_the_options(tmp_path: Path) -> None:
    with socket_closed_port() as port:
        env = {"SENTIMENT_HOME": str(tmp_path / "home"), "PATH": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
        proc = subprocess.run(
            [sys.executable, "-m", "sentiment_mlops.backends.local.dataset", "--url", f"http://127.0.0.1:{port}/x.zip"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("ERROR: could not download Sentiment140 from http://127.0.0.1:")
    for option in ("TRAINING_INPUT", dataset.ARCHIVE_NAME, dataset.URL_ENV, "Kaggle"):
        assert option in err[-1]
    assert "Traceback" not in proc.stderr


def test_an_archive_without_the_training_csv_is_refused(http_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _requests = http_server
    _archive(tmp_path / "www" / "other.zip", member="something_else.csv")
    with pytest.raises(dataset.DatasetUnavailable, match=f"has no {dataset.MEMBER}"):
        dataset.ensure_sample(rows=10, home=tmp_path / "home", url=f"{base}/other.zip")
    assert not (tmp_path / "home" / "datasets" / "sentiment140" / dataset.ARCHIVE_NAME).exists()


def test_a_pinned_checksum_that_does_not_match_is_refused(http_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    base, _requests = http_server
    _archive(tmp_path / "www" / dataset.ARCHIVE_NAME)
    monkeypatch.setenv(dataset.SHA256_ENV, "0" * 64)
    with pytest.raises(dataset.DatasetUnavailable, match="is not the expected 0000"):
        dataset.ensure_sample(rows=10, home=tmp_path / "home", url=f"{base}/{dataset.ARCHIVE_NAME}")


def test_kaggle_is_used_when_the_url_fails_and_kaggle_is_configured(tmp_path: Path, monkeypatch) -> None:
    """A stand-in kaggle CLI (the real one needs an account and the internet)."""
    zip_path = _archive(tmp_path / "sentiment140.zip")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "kaggle"
    exe.write_text(
        f"#!{sys.executable}\nimport shutil, sys\nargs = sys.argv[1:]\n"
        "assert args[:4] == ['datasets', 'download', '-d', 'kazanova/sentiment140'], args\n"
        f"shutil.copy({str(zip_path)!r}, args[args.index('-p') + 1])\n"
    )
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    with socket_closed_port() as port:
        sample = dataset.ensure_sample(rows=20, home=tmp_path / "home", url=f"http://127.0.0.1:{port}/x.zip")
    assert len(_read(sample)) == 20
    assert json.loads((sample.parent / "archive.json").read_text())["source"] == "kaggle:kazanova/sentiment140"


class socket_closed_port:  # noqa: N801 - used as a context manager like a function
    """A 127.0.0.1 port with nothing listening (bound, never listened on, so nobody else takes it)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return self._sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
