"""The demo's training data when no Sentiment140 sample is at hand: download, verify, cache, sample.

`python -m sentiment_mlops.backends.local.dataset` prints the path of a 100,000-row balanced sample
(50,000 negative, 50,000 positive; `polarity,text`, UTF-8, every field quoted: the layout of the
shared test sample), making it on first use from the public Sentiment140 archive:

1. the archive from its original home, the Stanford `trainingandtestdata.zip` (no account needed;
   `SENTIMENT140_ARCHIVE_URL` points elsewhere, e.g. a mirror or a copy on your network);
2. if that fails and Kaggle is configured (kaggle CLI plus `~/.kaggle/kaggle.json` or
   `KAGGLE_USERNAME`/`KAGGLE_KEY`), `kaggle datasets download -d kazanova/sentiment140`;
3. offline: one error naming the options (TRAINING_INPUT, a copy of the archive in the cache, the URL
   variable, Kaggle).

Verification: no SHA-256 of the real archive is pinned here because none could be checked from this
project's machines (they have no internet). The archive is checked by structure instead (a zip with
`training.1600000.processed.noemoticon.csv`, six columns, polarity 0/2/4) and the SHA-256 observed at
download is recorded beside it in the cache; later runs verify the cached archive against that
record and download again on a mismatch. `SENTIMENT140_ARCHIVE_SHA256` pins an expected value.

Cache: `$SENTIMENT_HOME/datasets/sentiment140/` (archive, `archive.json` with URL, size and SHA-256,
and the samples). The module is pure Python (no Spark, no Airflow) so it runs before either starts.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sentiment_mlops.core.settings import load_settings

ARCHIVE_URL = "https://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip"
URL_ENV = "SENTIMENT140_ARCHIVE_URL"
SHA256_ENV = "SENTIMENT140_ARCHIVE_SHA256"
KAGGLE_DATASET = "kazanova/sentiment140"
MEMBER = "training.1600000.processed.noemoticon.csv"
ARCHIVE_NAME = "trainingandtestdata.zip"
DEMO_ROWS = 100_000
COLUMNS = 6
CHUNK = 1024 * 1024


class DatasetUnavailable(RuntimeError):
    """The data could not be had; the message names what the user can do. main() prints it as one line."""


def cache_dir(home: Path | None = None) -> Path:
    """`$SENTIMENT_HOME/datasets/sentiment140` (created)."""
    path = (home or load_settings().home) / "datasets" / "sentiment140"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _progress(total: int | None) -> Callable[[int], None]:
    """A one-line progress bar on stderr (only on a terminal: logs get the start and end lines)."""
    tty = sys.stderr.isatty()
    state = {"last": -1}

    def update(done: int) -> None:
        if not tty:
            return
        if total:
            pct = min(100, done * 100 // total)
            if pct != state["last"]:
                state["last"] = pct
                bar = "#" * (pct // 4)
                print(f"\r  [{bar:<25}] {pct:3d}% {done / 1e6:6.1f} MB", end="", file=sys.stderr, flush=True)
        else:
            print(f"\r  {done / 1e6:6.1f} MB", end="", file=sys.stderr, flush=True)

    return update


def download(url: str, dest: Path, timeout: float = 60.0) -> str:
    """Stream `url` to `dest` (via a temporary file) with a progress bar; return its SHA-256."""
    print(f"downloading {url}", file=sys.stderr)
    digest = hashlib.sha256()
    part = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as resp, part.open("wb") as out:  # noqa: S310 - configured URL
        length = resp.headers.get("Content-Length")
        update, done = _progress(int(length) if length and length.isdigit() else None), 0
        while chunk := resp.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            update(done)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    part.replace(dest)
    print(f"downloaded {done:,} bytes, sha256 {digest.hexdigest()}", file=sys.stderr)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_archive(path: Path, check_rows: int = 1000) -> None:
    """Raise DatasetUnavailable unless `path` is a zip holding the Sentiment140 training CSV: its
    member name, six columns and a 0/2/4 polarity on the first `check_rows` rows."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = {Path(n).name: n for n in zf.namelist()}
            if MEMBER not in names:
                raise DatasetUnavailable(f"{path} has no {MEMBER} (members: {sorted(names)[:5]})")
            with zf.open(names[MEMBER]) as raw:
                reader = csv.reader(io.TextIOWrapper(raw, encoding="latin-1", newline=""))
                for lineno, row in enumerate(reader, 1):
                    if len(row) != COLUMNS or row[0] not in ("0", "2", "4"):
                        raise DatasetUnavailable(
                            f"{path}: {MEMBER} line {lineno} is not Sentiment140 "
                            f"({len(row)} columns, polarity {row[0] if row else None!r}); expected {COLUMNS} columns"
                        )
                    if lineno >= check_rows:
                        break
    except zipfile.BadZipFile as exc:
        raise DatasetUnavailable(f"{path} is not a zip archive ({exc})") from exc


def balanced_sample(archive: Path, out: Path, rows: int = DEMO_ROWS, seed: int = 42) -> dict[str, int]:
    """Write `rows` tweets, half negative (0) half positive (4), chosen uniformly at random (reservoir
    sampling, seeded), in archive order, as `polarity,text` UTF-8; return the counts per polarity."""
    per_class, rng = rows // 2, random.Random(seed)
    chosen: dict[str, list[tuple[int, str]]] = {"0": [], "4": []}
    seen = {"0": 0, "4": 0}
    with zipfile.ZipFile(archive) as zf, zf.open(_member_path(zf)) as raw:
        for index, row in enumerate(csv.reader(io.TextIOWrapper(raw, encoding="latin-1", newline=""))):
            label = row[0] if len(row) == COLUMNS else None
            if label not in chosen:
                continue
            seen[label] += 1
            bucket = chosen[label]
            if len(bucket) < per_class:
                bucket.append((index, row[5]))
            elif (slot := rng.randrange(seen[label])) < per_class:
                bucket[slot] = (index, row[5])
    picked = sorted(((i, label, text) for label, bucket in chosen.items() for i, text in bucket))
    tmp = out.with_suffix(out.suffix + ".part")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        writer.writerows((label, text) for _i, label, text in picked)
    tmp.replace(out)
    return {label: len(bucket) for label, bucket in chosen.items()}


def _member_path(zf: zipfile.ZipFile) -> str:
    return next(n for n in zf.namelist() if Path(n).name == MEMBER)


def kaggle_configured(env: dict[str, str] | None = None) -> bool:
    """A kaggle CLI on PATH and credentials (KAGGLE_USERNAME+KAGGLE_KEY or a kaggle.json)."""
    env = dict(os.environ) if env is None else env
    if not shutil.which("kaggle", path=env.get("PATH")):
        return False
    config_dir = Path(env.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle").expanduser()
    return bool(env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")) or (config_dir / "kaggle.json").is_file()


def kaggle_download(dest: Path, timeout: float = 1800) -> str:
    """`kaggle datasets download -d kazanova/sentiment140` into a temporary folder, moved to `dest`."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        cmd = ["kaggle", "datasets", "download", "-d", KAGGLE_DATASET, "-p", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        zips = sorted(Path(tmp).glob("*.zip"))
        if proc.returncode != 0 or not zips:
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            raise OSError(f"kaggle: {lines[-1] if lines else f'exit status {proc.returncode}'}")
        shutil.move(str(zips[0]), dest)
    return sha256_of(dest)


def offline_error(url: str, reason: str, cache: Path, kaggle_reason: str | None) -> DatasetUnavailable:
    """The one error a user without the data sees: what failed and every way to provide the data."""
    kaggle = (
        f"Kaggle failed too ({kaggle_reason})"
        if kaggle_reason
        else "or configure Kaggle (kaggle CLI + ~/.kaggle/kaggle.json)"
    )
    return DatasetUnavailable(
        f"could not download Sentiment140 from {url} ({reason}). Options: set TRAINING_INPUT to a "
        f"Sentiment140 CSV you have (polarity,text or the six-column original); copy {ARCHIVE_NAME} into "
        f"{cache}; set {URL_ENV} to a reachable copy of the archive; {kaggle}"
    )


def _cached_archive(archive: Path, record: Path) -> bool:
    """True when the cached archive matches the checksum recorded when it was fetched (or placed)."""
    if not archive.is_file():
        return False
    if not record.is_file():  # put there by hand: check its structure and record it
        verify_archive(archive)
        _write_record(record, archive, sha256_of(archive), f"placed in {archive.parent}")
        return True
    if sha256_of(archive) == json.loads(record.read_text())["sha256"]:
        return True
    print(f"{archive} does not match its recorded sha256; downloading it again", file=sys.stderr)
    archive.unlink()
    return False


def _write_record(record: Path, archive: Path, sha: str, source: str) -> None:
    pinned = os.environ.get(SHA256_ENV, "").strip().lower()
    if pinned and pinned != sha:
        archive.unlink()
        raise DatasetUnavailable(f"{source}: sha256 {sha} is not the expected {pinned} ({SHA256_ENV})")
    info = {"source": source, "sha256": sha, "bytes": archive.stat().st_size, "member": MEMBER}
    info["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    record.write_text(json.dumps(info, indent=2) + "\n")


def ensure_archive(cache: Path, url: str) -> Path:
    """The verified archive in `cache`: the cached copy when its checksum still matches, else a
    download from `url`, else from Kaggle when configured; DatasetUnavailable when none works."""
    archive, record = cache / ARCHIVE_NAME, cache / "archive.json"
    if _cached_archive(archive, record):
        return archive
    try:
        sha, source = download(url, archive), url
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = str(getattr(exc, "reason", exc))[:200]
        if not kaggle_configured():
            raise offline_error(url, reason, cache, None) from exc
        try:
            sha, source = kaggle_download(archive), f"kaggle:{KAGGLE_DATASET}"
        except (OSError, subprocess.TimeoutExpired) as kexc:
            raise offline_error(url, reason, cache, str(kexc)[:200]) from kexc
    try:
        verify_archive(archive)
    except DatasetUnavailable:
        archive.unlink(missing_ok=True)
        raise
    _write_record(record, archive, sha, source)
    return archive


def ensure_sample(rows: int = DEMO_ROWS, home: Path | None = None, url: str | None = None, seed: int = 42) -> Path:
    """Path of a balanced `rows`-tweet sample in the cache, made from the archive on first use."""
    cache = cache_dir(home)
    sample = cache / f"train_{rows}.csv"
    if sample.is_file():
        return sample
    archive = ensure_archive(cache, url or os.environ.get(URL_ENV) or ARCHIVE_URL)
    counts = balanced_sample(archive, sample, rows, seed)
    print(f"sampled {counts['0']:,} negative and {counts['4']:,} positive tweets into {sample}", file=sys.stderr)
    return sample


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print the path of a Sentiment140 demo sample, downloading it if needed.")
    p.add_argument("--rows", type=int, default=DEMO_ROWS, help="sample size, half per polarity (default %(default)s)")
    p.add_argument("--url", help=f"archive URL (default: {URL_ENV} or {ARCHIVE_URL})")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    if args.rows < 2:
        p.error("--rows must be at least 2")
    try:
        print(ensure_sample(args.rows, url=args.url, seed=args.seed))
    except DatasetUnavailable as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
