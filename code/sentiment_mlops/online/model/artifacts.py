"""Reading a saved Spark ML folder without Spark: each stage's `metadata/` JSON line and `data/`
Parquet (with pyarrow), and Spark's vector/matrix structs as Python lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

SPARK_ML = "org.apache.spark.ml."


class UnsupportedModelError(ValueError):
    """The artifact is not a pipeline this module can reproduce exactly."""


@dataclass(frozen=True)
class StageInfo:
    index: int
    class_name: str
    uid: str
    spark_version: str
    params: dict[str, Any]  # defaultParamMap overlaid with the explicitly set paramMap
    explicit: frozenset[str]  # names set explicitly (paramMap)
    path: Path
    metadata: dict[str, Any]

    @property
    def short_name(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]

    def param(self, name: str) -> Any:
        if name not in self.params:
            raise UnsupportedModelError(f"stage {self.index} ({self.short_name}) has no saved param {name!r}")
        return self.params[name]


def read_metadata(folder: Path) -> dict[str, Any]:
    meta_dir = folder / "metadata"
    parts = sorted(p for p in meta_dir.glob("part-*") if p.is_file()) if meta_dir.is_dir() else []
    if not parts:
        raise UnsupportedModelError(f"no Spark ML metadata under {meta_dir}")
    # DefaultParamsWriter writes one JSON line into a single text part.
    line = next((ln for ln in parts[0].read_text(encoding="utf-8").splitlines() if ln.strip()), "")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise UnsupportedModelError(f"unreadable Spark ML metadata {parts[0]}: {exc}") from exc


def stage_info(index: int, folder: Path) -> StageInfo:
    meta = read_metadata(folder)
    explicit = dict(meta.get("paramMap") or {})
    return StageInfo(
        index=index,
        class_name=str(meta.get("class", "")),
        uid=str(meta.get("uid", "")),
        spark_version=str(meta.get("sparkVersion", "")),
        params={**(meta.get("defaultParamMap") or {}), **explicit},
        explicit=frozenset(explicit),
        path=folder,
        metadata=meta,
    )


def read_data(stage: StageInfo, sub: str = "data") -> list[dict[str, Any]]:
    folder = stage.path / sub
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise UnsupportedModelError(f"stage {stage.index} ({stage.short_name}) has no Parquet data in {folder}")
    # pyarrow skips the `_SUCCESS` and `.crc` side files (names starting with "_" or ".").
    return pq.read_table(folder).to_pylist()


def spark_major(version: str) -> int:
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        return 0


def dense_vector(vec: dict[str, Any] | None, what: str) -> list[float]:
    """Spark's VectorUDT struct (type 0 sparse: size/indices/values, type 1 dense: values)."""
    if vec is None:
        raise UnsupportedModelError(f"{what}: vector is null")
    if vec["type"] == 1:
        return [float(v) for v in vec["values"]]
    if vec["type"] == 0:
        dense = [0.0] * int(vec["size"])
        for i, v in zip(vec["indices"], vec["values"], strict=True):
            dense[i] = float(v)
        return dense
    raise UnsupportedModelError(f"{what}: unknown vector type {vec['type']}")


def dense_matrix(mat: dict[str, Any], what: str) -> list[list[float]]:
    """Spark's MatrixUDT struct -> rows. Dense values are column-major unless isTransposed; sparse
    is CSC (colPtrs/rowIndices) unless isTransposed, when it is CSR with the roles swapped."""
    rows, cols, transposed = int(mat["numRows"]), int(mat["numCols"]), bool(mat["isTransposed"])
    out = [[0.0] * cols for _ in range(rows)]
    values = mat["values"]
    if mat["type"] == 1:
        for k, v in enumerate(values):
            r, c = (k // cols, k % cols) if transposed else (k % rows, k // rows)
            out[r][c] = float(v)
        return out
    if mat["type"] == 0:
        ptrs, idx = mat["colPtrs"], mat["rowIndices"]
        for major in range(len(ptrs) - 1):
            for k in range(ptrs[major], ptrs[major + 1]):
                r, c = (major, idx[k]) if transposed else (idx[k], major)
                out[r][c] = float(values[k])
        return out
    raise UnsupportedModelError(f"{what}: unknown matrix type {mat['type']}")
