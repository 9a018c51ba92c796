"""code/download_and_upload.py: upload to a real GCS emulator and to the local backend's bucket folder,
the Kaggle path with a stand-in CLI, and one-line errors when the dataset cannot be fetched."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.fixtures_gcs import gcs_client_fixture, gcs_emulator_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "code" / "download_and_upload.py"
CSV_BODY = '"0","1","Mon Apr 06 22:19:45 PDT 2009","NO_QUERY","user","is upset, can\'t update"\n' * 50


@pytest.fixture(scope="module")
def dau() -> ModuleType:
    spec = importlib.util.spec_from_file_location("download_and_upload", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "training.1600000.processed.noemoticon.csv"
    path.write_text(CSV_BODY, encoding="latin-1")
    return path


@pytest.fixture
def zip_file(tmp_path: Path, csv_file: Path) -> Path:
    path = tmp_path / "sentiment140.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(csv_file, csv_file.name)
    return path


def test_upload_to_gcs_emulator(dau: ModuleType, gcs, csv_file: Path, zip_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    gcs.create_bucket("acme-raw")
    rc = dau.main(["--gcs-bucket", "gs://acme-raw", "--local-file", str(csv_file), "--backend", "dataproc"])
    assert rc == 0
    assert capsys.readouterr().out.split() == [f"gs://acme-raw/raw/{csv_file.name}"]
    assert gcs.bucket("acme-raw").blob(f"raw/{csv_file.name}").download_as_bytes() == csv_file.read_bytes()

    # A zip with --unzip uploads its members, under a custom prefix.
    out_dir = tmp_path / "extracted"
    rc = dau.main(
        [
            "--gcs-bucket",
            "acme-raw",
            "--local-file",
            str(zip_file),
            "--unzip",
            "--output-dir",
            str(out_dir),
            "--gcs-prefix",
            "v2/",
            "--backend",
            "dataproc",
        ]
    )
    assert rc == 0
    names = sorted(b.name for b in gcs.list_blobs("acme-raw"))
    assert names == [f"raw/{csv_file.name}", f"v2/{csv_file.name}"]


def test_upload_large_file_goes_through_resumable_chunks(dau: ModuleType, gcs, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The real CSV is ~240 MB; with a 256 KiB chunk a 600 KiB file exercises the same chunked path.
    monkeypatch.setattr(dau, "UPLOAD_CHUNK_BYTES", 256 * 1024)
    gcs.create_bucket("acme-big")
    big = tmp_path / "big.csv"
    big.write_bytes(os.urandom(600 * 1024))
    assert dau.upload_gcs([big], "acme-big", "raw/") == ["gs://acme-big/raw/big.csv"]
    assert gcs.bucket("acme-big").blob("raw/big.csv").download_as_bytes() == big.read_bytes()


def test_missing_bucket_is_one_clear_line(dau: ModuleType, gcs, csv_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = dau.main(["--gcs-bucket", "no-such-bucket", "--local-file", str(csv_file), "--backend", "dataproc"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.count("\n") == 1 and "gs://no-such-bucket does not exist" in err


def test_upload_to_local_backend_bucket_folder(
    dau: ModuleType, csv_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "buckets"
    monkeypatch.setenv("SENTIMENT_BUCKET_ROOT", str(root))
    rc = dau.main(["--gcs-bucket", "acme-raw", "--local-file", str(csv_file), "--backend", "local"])
    assert rc == 0
    uri = capsys.readouterr().out.strip()
    assert uri == f"gs://acme-raw/raw/{csv_file.name}"
    from sentiment_mlops.core.settings import load_settings
    from sentiment_mlops.core.storage import resolve_uri

    copied = Path(resolve_uri(uri, load_settings("local")))
    assert copied == root / "acme-raw" / "raw" / csv_file.name
    assert copied.read_bytes() == csv_file.read_bytes()


def test_without_kaggle_cli_the_error_is_one_line_with_a_hint(
    dau: ModuleType, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    rc = dau.main(["--gcs-bucket", "acme-raw", "--output-dir", str(tmp_path / "dl"), "--backend", "local"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert err.startswith("error: the kaggle CLI is not installed") and "--local-file" in err


def _fake_kaggle(bin_dir: Path, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "kaggle"
    exe.write_text(f"#!{sys.executable}\n{body}")
    exe.chmod(0o755)


def test_failing_kaggle_download_reports_its_reason(dau: ModuleType, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    # What kaggle does offline or without ~/.kaggle/kaggle.json: a traceback ending in one reason.
    _fake_kaggle(
        tmp_path / "bin",
        "import sys\nprint('Traceback (most recent call last):', file=sys.stderr)\n"
        "print('OSError: Could not find kaggle.json. Make sure it is located in ~/.kaggle.', file=sys.stderr)\n"
        "sys.exit(1)\n",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    rc = dau.main(["--gcs-bucket", "acme-raw", "--output-dir", str(tmp_path / "dl"), "--backend", "local"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert "Could not find kaggle.json" in err and "--local-file" in err and "Traceback" not in err


def test_kaggle_download_then_unzip_then_upload(
    dau: ModuleType, zip_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    # A stand-in kaggle CLI that checks its arguments and "downloads" the zip into -p DIR.
    _fake_kaggle(
        tmp_path / "bin",
        "import shutil, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[:4] == ['datasets', 'download', '-d', 'kazanova/sentiment140'], args\n"
        f"shutil.copy({str(zip_file)!r}, args[args.index('-p') + 1] + '/sentiment140.zip')\n",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("SENTIMENT_BUCKET_ROOT", str(tmp_path / "buckets"))
    rc = dau.main(["--gcs-bucket", "acme-raw", "--output-dir", str(tmp_path / "dl"), "--unzip", "--backend", "local"])
    assert rc == 0, capsys.readouterr().err
    landed = tmp_path / "buckets" / "acme-raw" / "raw" / "training.1600000.processed.noemoticon.csv"
    assert landed.read_text(encoding="latin-1") == CSV_BODY


def test_bad_zip_and_missing_local_file_are_clear(dau: ModuleType, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    fake_zip = tmp_path / "broken.zip"
    fake_zip.write_bytes(b"PK\x03\x04 not really a zip")
    assert dau.main(["--gcs-bucket", "b", "--local-file", str(tmp_path / "nope.csv"), "--backend", "local"]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(dau.DatasetError, match="not a valid zip"):
        dau.unzip_archive(fake_zip, tmp_path / "out")


def test_script_runs_standalone_without_kaggle(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no kaggle on PATH
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--gcs-bucket", "acme-raw", "--output-dir", str(tmp_path / "dl")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "--local-file" in proc.stderr


def test_reference_command_uploads_to_gcs_without_a_backend(
    dau: ModuleType, gcs, zip_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    """The original project's command, word for word (a stand-in kaggle CLI), with no backend
    chosen anywhere: the files land in the GCS bucket, not in a local folder."""
    _fake_kaggle(
        tmp_path / "bin",
        "import shutil, sys\nargs = sys.argv[1:]\n"
        f"shutil.copy({str(zip_file)!r}, args[args.index('-p') + 1] + '/sentiment140.zip')\n",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("SENTIMENT_BACKEND", raising=False)
    monkeypatch.setenv("SENTIMENT_BUCKET_ROOT", str(tmp_path / "buckets"))
    monkeypatch.chdir(tmp_path)
    gcs.create_bucket("sentiment-bucket-raw")
    rc = dau.main(
        ["--dataset", "kazanova/sentiment140", "--gcs-bucket", "sentiment-bucket-raw",
         "--output-dir", "data_raw/sentiment140", "--gcs-prefix", "data_raw/sentiment140", "--unzip"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    obj = "data_raw/sentiment140/training.1600000.processed.noemoticon.csv"
    assert out.split() == [f"gs://sentiment-bucket-raw/{obj}"] and "copied to GCS" in err
    assert gcs.bucket("sentiment-bucket-raw").blob(obj).download_as_bytes().decode("latin-1") == CSV_BODY
    assert not (tmp_path / "buckets").exists()


def test_gs_destination_goes_to_gcs_even_with_the_local_backend_set(
    dau: ModuleType, gcs, csv_file: Path, tmp_path: Path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SENTIMENT_BACKEND", "local")
    monkeypatch.setenv("SENTIMENT_BUCKET_ROOT", str(tmp_path / "buckets"))
    gcs.create_bucket("gs-dest-raw")
    assert dau.main(["--gcs-bucket", "gs://gs-dest-raw", "--local-file", str(csv_file)]) == 0
    assert [b.name for b in gcs.list_blobs("gs-dest-raw")] == [f"raw/{csv_file.name}"]
    # a bare bucket name follows SENTIMENT_BACKEND=local, and the output says where it went
    assert dau.main(["--gcs-bucket", "gs-dest-raw", "--local-file", str(csv_file)]) == 0
    assert (tmp_path / "buckets" / "gs-dest-raw" / "raw" / csv_file.name).is_file()
    assert "local backend's bucket folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "backend,bucket,env,expected",
    [
        (None, "sentiment-bucket-raw", {}, "dataproc"),
        (None, "gs://b", {"SENTIMENT_BACKEND": "local"}, "dataproc"),
        (None, "b", {"SENTIMENT_BACKEND": "local"}, "local"),
        ("local", "gs://b", {}, "local"),
        ("dataproc", "b", {"SENTIMENT_BACKEND": "local"}, "dataproc"),
    ],
)
def test_destination_backend_rule(dau: ModuleType, backend, bucket, env, expected) -> None:  # type: ignore[no-untyped-def]
    assert dau.destination_backend(backend, bucket, env) == expected
