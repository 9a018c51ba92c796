"""Zip the `sentiment_mlops` package for Dataproc's `python_file_uris`.

Spark puts every `--py-files` zip on the driver's and executors' sys.path, so the zip holds the
package folder at its root (`sentiment_mlops/__init__.py`, ...) and `import sentiment_mlops` works.

The archive is reproducible (sorted entries, fixed timestamps): the same sources give the same bytes,
so an unchanged package uploads as an identical object.

CLI: `python -m sentiment_mlops.jobs.packaging OUT.zip`
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the sentiment_mlops package
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # earliest time a zip entry can hold


def package_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Files that go into the zip, relative to the package's parent, in a stable order."""
    files = []
    for path in sorted(package_dir.rglob("*")):
        rel = path.relative_to(package_dir)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIP_SUFFIXES):
            files.append(path.relative_to(package_dir.parent))
    return files


def build_package_zip(dest: Path, package_dir: Path = PACKAGE_DIR) -> Path:
    """Write the package zip to `dest` (parents created) and return its path."""
    dest = Path(dest).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    files = package_files(package_dir)
    if not any(f.name == "__init__.py" and len(f.parts) == 2 for f in files):
        raise FileNotFoundError(f"{package_dir} is not a package (no __init__.py)")
    # Write beside the destination and rename, so a reader (gsutil cp) never sees a half-written zip.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for rel in files:
                info = zipfile.ZipInfo(rel.as_posix(), date_time=_FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, (package_dir.parent / rel).read_bytes())
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m sentiment_mlops.jobs.packaging OUT.zip", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    print(build_package_zip(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
