"""Zip the `sentiment_mlops` package for Dataproc's `python_file_uris`.

Spark puts every `--py-files` zip on the driver's and executors' sys.path, so the zip holds the
package folder at its root (`sentiment_mlops/__init__.py`, ...) and `import sentiment_mlops` works.

The archive is reproducible (sorted entries, fixed timestamps): the same sources give the same bytes,
so an unchanged package uploads as an identical object.

CLI: `python -m sentiment_mlops.jobs.packaging OUT.zip`
"""

from __future__ import annotations

import ast
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the sentiment_mlops package
PACKAGE_NAME = PACKAGE_DIR.name
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


def _parse(source: str) -> ast.Module:
    # CPython 3.11 can fail a correct parse with SystemError "AST constructor recursion depth mismatch"
    # while another thread builds an AST (gh-106905); the source is fine, so parse it again.
    for attempt in range(3):
        try:
            return ast.parse(source)
        except SystemError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Dotted names of the package's modules that `source` (module `module`) imports, lazily or not."""
    found: set[str] = set()
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parts, *([base] if base else [])])
            found.add(base)
            # `from pkg import name`: name is a submodule or an attribute; both are checked below
            found |= {f"{base}.{alias.name}?" for alias in node.names if alias.name != "*"}
    return {name for name in found if name == PACKAGE_NAME or name.startswith(PACKAGE_NAME + ".")}


def missing_modules(zip_path: Path, entry_scripts: tuple[Path, ...] = ()) -> list[str]:
    """What the job would fail to import from `zip_path`: one line per module of the package that a
    module in the zip or an entry script imports but the zip lacks (``"sentiment_mlops.x.y (imported by
    sentiment_mlops/z.py)"``). Empty for a complete zip; ["... no sentiment_mlops/__init__.py"] for a
    zip without the package at its root."""
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if n.endswith(".py")]
        sources = {n: zf.read(n).decode("utf-8", errors="replace") for n in names if n.startswith(PACKAGE_NAME + "/")}
    if f"{PACKAGE_NAME}/__init__.py" not in sources:
        return [f"{zip_path.name} has no {PACKAGE_NAME}/__init__.py at its root (built from the wrong folder?)"]
    modules = set()
    for name in sources:
        path = PurePosixPath(name)
        modules.add(".".join(path.parent.parts if path.name == "__init__.py" else path.with_suffix("").parts))
    importers: list[tuple[str, str, bool, str]] = []
    for name, source in sources.items():
        path = PurePosixPath(name)
        is_package = path.name == "__init__.py"
        dotted = ".".join(path.parent.parts if is_package else path.with_suffix("").parts)
        importers.append((name, dotted, is_package, source))
    importers += [(p.name, "__main__", False, p.read_text()) for p in entry_scripts]
    problems: dict[str, str] = {}
    for where, dotted, is_package, source in sorted(importers):
        try:
            wanted = _imported_modules(source, dotted, is_package)
        except SyntaxError as exc:
            problems[where] = f"{where} does not parse ({exc.msg}, line {exc.lineno})"
            continue
        for module in sorted(wanted):
            maybe = module.endswith("?")  # `from x import name`: a submodule, or a name x's __init__ binds
            module = module.rstrip("?")
            if module in modules or module in problems:
                continue
            if maybe:
                base, attr = module.rsplit(".", 1)
                init = sources.get(f"{base.replace('.', '/')}/__init__.py")
                if init is None or re.search(rf"\b{re.escape(attr)}\b", init):
                    continue  # a missing base is reported on its own; a name the package binds is fine
            problems[module] = f"{module} (imported by {where})"
    return sorted(problems.values())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python -m sentiment_mlops.jobs.packaging OUT.zip", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    print(build_package_zip(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
