"""Fetch Sentiment140 and put it in the raw bucket.

Downloads with the Kaggle CLI (`kaggle datasets download -d kazanova/sentiment140`), or takes a file
you already have (`--local-file`), optionally unzips it, and uploads the files to
`gs://BUCKET/PREFIX`: with google-cloud-storage on the dataproc backend, or into the local backend's
bucket folder (sentiment_mlops.core.storage.resolve_uri) so the same `gs://` URI works for local jobs.

Where the files go (destination_backend): `--backend` when given; else a `gs://` bucket means GCS;
else SENTIMENT_BACKEND; else GCS. The script is named for GCS and the original project's command
(`--gcs-bucket sentiment-bucket-raw`, no backend) uploads to GCS, so that is the default here even
though the rest of the package defaults to the local backend. The chosen destination is printed
to stderr after the copy; errors stay one line.

    python code/download_and_upload.py --gcs-bucket my-bucket-raw --unzip
    python code/download_and_upload.py --gcs-bucket my-bucket-raw --local-file ~/sentiment140.zip --unzip
    python code/download_and_upload.py --backend local --gcs-bucket my-bucket-raw --local-file train.csv

Failures (no kaggle CLI, no network, bucket missing, no credentials) end with one `error:` line and
exit status 1. STORAGE_EMULATOR_HOST points the GCS upload at an emulator.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from sentiment_mlops.core.settings import BACKENDS, Settings, load_settings
from sentiment_mlops.core.storage import local_path

DEFAULT_DATASET = "kazanova/sentiment140"
DEFAULT_PREFIX = "raw/"
LOCAL_FILE_HINT = "download the dataset yourself and pass --local-file PATH (CSV or zip)"
# Resumable uploads in 16 MiB chunks: the 240 MB CSV survives a dropped connection mid-way.
UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024


class DatasetError(RuntimeError):
    """A problem the user can fix; main() prints it as one line."""


def kaggle_download(dataset: str, output_dir: Path, kaggle_bin: str | None = None, timeout: float = 1800) -> Path:
    """Run `kaggle datasets download -d DATASET -p OUTPUT_DIR`; return the downloaded zip.

    Unzipping is ours (see unzip_archive) rather than kaggle's `--unzip`, so a downloaded archive and
    a --local-file archive go through the same code.
    """
    kaggle = kaggle_bin or shutil.which("kaggle")
    if not kaggle:
        raise DatasetError(f"the kaggle CLI is not installed (pip install kaggle); or {LOCAL_FILE_HINT}")
    output_dir.mkdir(parents=True, exist_ok=True)
    before = set(output_dir.glob("*.zip"))
    cmd = [kaggle, "datasets", "download", "-d", dataset, "-p", str(output_dir)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DatasetError(f"kaggle download of {dataset} timed out after {timeout:.0f}s; {LOCAL_FILE_HINT}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit status {proc.returncode}"
        raise DatasetError(f"kaggle download of {dataset} failed: {reason[:300]}; {LOCAL_FILE_HINT}")
    # Kaggle names the archive after the dataset slug; take the new (or newest) zip in the folder.
    zips = sorted(set(output_dir.glob("*.zip")) - before) or sorted(
        output_dir.glob("*.zip"), key=lambda p: p.stat().st_mtime
    )
    if not zips:
        raise DatasetError(f"kaggle reported success but no zip appeared in {output_dir}; {LOCAL_FILE_HINT}")
    return zips[-1]


def unzip_archive(archive: Path, output_dir: Path) -> list[Path]:
    """Extract `archive` into `output_dir`; return the extracted files."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            target = output_dir.resolve()
            for member in members:
                # zipfile already neutralises absolute paths and `..`; this check documents the intent.
                if not (target / member.filename).resolve().is_relative_to(target):
                    raise DatasetError(f"{archive} has an entry outside the output folder: {member.filename}")
            zf.extractall(target, members)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive} is not a valid zip file: {exc}") from exc
    return [output_dir / m.filename for m in members]


def object_name(prefix: str, filename: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{filename}" if prefix else filename


def bare_bucket(bucket: str) -> str:
    name = bucket.removeprefix("gs://").strip("/")
    if not name or "/" in name:
        raise DatasetError(f"--gcs-bucket takes a bucket name (optionally gs://NAME), got {bucket!r}")
    return name


def upload_local_backend(files: Sequence[Path], bucket: str, prefix: str, settings: Settings) -> list[str]:
    """Copy files into the local backend's folder for gs://BUCKET/PREFIX/NAME."""
    uris = []
    for f in files:
        uri = f"gs://{bucket}/{object_name(prefix, f.name)}"
        dest = local_path(uri, settings)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
        uris.append(uri)
    return uris


def gcs_client(project: str | None = None):  # type: ignore[no-untyped-def]
    """A storage client; anonymous against STORAGE_EMULATOR_HOST, default credentials otherwise."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or "test", credentials=AnonymousCredentials())
    return storage.Client(project=project)


def upload_gcs(files: Sequence[Path], bucket: str, prefix: str, client=None) -> list[str]:  # type: ignore[no-untyped-def]
    """Upload files to gs://BUCKET/PREFIX/NAME with google-cloud-storage."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        client = client or gcs_client(os.environ.get("GCP_PROJECT_ID"))
        gcs_bucket = client.bucket(bucket)
        uris = []
        for f in files:
            blob = gcs_bucket.blob(object_name(prefix, f.name), chunk_size=UPLOAD_CHUNK_BYTES)
            blob.upload_from_filename(str(f), timeout=600)
            uris.append(f"gs://{bucket}/{blob.name}")
        return uris
    except auth_exc.DefaultCredentialsError as exc:
        raise DatasetError(
            "no Google Cloud credentials (run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS)"
        ) from exc
    except gexc.NotFound as exc:
        raise DatasetError(f"bucket gs://{bucket} does not exist (create it with `gsutil mb gs://{bucket}`)") from exc
    except gexc.Forbidden as exc:
        raise DatasetError(f"no permission to write to gs://{bucket}: {exc.message}") from exc
    except (gexc.GoogleAPIError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"upload to gs://{bucket} failed: {first[:300]}") from exc


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=DEFAULT_DATASET, help="Kaggle dataset slug (default %(default)s)")
    p.add_argument("--gcs-bucket", required=True, help="destination bucket name (e.g. MYBUCKET-raw)")
    p.add_argument("--gcs-prefix", default=DEFAULT_PREFIX, help="object prefix in the bucket (default %(default)s)")
    p.add_argument("--output-dir", type=Path, default=Path("data/sentiment140"), help="download/unzip folder")
    p.add_argument("--unzip", action="store_true", help="extract a zip archive and upload its files")
    p.add_argument("--local-file", type=Path, help="use this CSV or zip instead of downloading")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="local: copy into the local bucket folder; dataproc: upload to GCS "
        "(default: GCS for a gs:// bucket, else SENTIMENT_BACKEND, else GCS)",
    )
    return p


def destination_backend(backend: str | None, gcs_bucket: str, env: dict[str, str] | None = None) -> str:
    """`--backend` if given, `dataproc` (GCS) for a gs:// bucket, else SENTIMENT_BACKEND, else `dataproc`."""
    if backend:
        return backend
    if gcs_bucket.strip().startswith("gs://"):
        return "dataproc"
    return (os.environ if env is None else env).get("SENTIMENT_BACKEND") or "dataproc"


def run(args: argparse.Namespace) -> list[str]:
    """The whole flow; returns the uploaded gs:// URIs."""
    settings = load_settings(destination_backend(args.backend, args.gcs_bucket))
    bucket = bare_bucket(args.gcs_bucket)
    if args.local_file is not None:
        source = args.local_file.expanduser()
        if not source.is_file():
            raise DatasetError(f"--local-file {source} does not exist")
    else:
        source = kaggle_download(args.dataset, args.output_dir)
    if args.unzip and zipfile.is_zipfile(source):
        files = unzip_archive(source, args.output_dir)
    else:
        files = [source]
    if not files:
        raise DatasetError(f"{source} contains no files")
    if settings.backend == "local":
        uris = upload_local_backend(files, bucket, args.gcs_prefix, settings)
        where = (
            f"the local backend's bucket folder {local_path(f'gs://{bucket}/', settings)} (--backend dataproc for GCS)"
        )
    else:
        uris = upload_gcs(files, bucket, args.gcs_prefix)
        where = "GCS"
    print(f"{len(uris)} file(s) copied to {where}", file=sys.stderr)
    return uris


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    try:
        uris = run(args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for uri in uris:
        print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
