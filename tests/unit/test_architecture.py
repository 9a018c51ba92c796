"""Architecture rules that import-linter cannot see: the DAG files live outside the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "airflow" / "dags").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_import_only_orchestration_from_the_package(dag_file: Path) -> None:
    ours = {m for m in imported_modules(dag_file) if m.split(".")[0] == "sentiment_mlops"}
    assert ours, f"{dag_file.name} declares a DAG without the orchestration library?"
    stray = sorted(m for m in ours if not m.startswith("sentiment_mlops.orchestration"))
    assert not stray, f"{dag_file.name} imports {stray}: DAG files import only sentiment_mlops.orchestration"


def test_there_are_dag_files() -> None:
    assert len(DAG_FILES) >= 4
