"""Claims in the documents that used to drift from the code, each checked against its source of truth.

`test_docs.py` checks names (Variables, flags, modules, paths); this file checks statements: a pointer to a
README section, a setting a workflow needs, a place said to hold figures, a `--help` text, the Python a
script promises.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(
    p.relative_to(ROOT).as_posix()
    for p in [*ROOT.glob("*.md"), *ROOT.glob("airflow/**/*.md"), *ROOT.glob("bench/*.md")]
)
WORKFLOWS = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(".github/workflows/*.yml"))
README_SECTION = re.compile(r'README(?:\.md)?[,:]?\s+(?:section\s+)?"([^"]+)"')


def headings(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+)$", text, flags=re.M)}


@pytest.mark.parametrize("rel", [*DOCS, *WORKFLOWS, "CONTRIBUTING.md"])
def test_pointers_to_readme_sections_exist(rel: str) -> None:
    """`see README, "Tests"` must lead to a heading called Tests."""
    readme = headings(ROOT / "README.md")
    text = (ROOT / rel).read_text(encoding="utf-8")
    missing = [m.group(1) for m in README_SECTION.finditer(text) if m.group(1) not in readme]
    assert not missing, f"{rel} points to README section(s) that do not exist: {missing}"


def test_workflow_settings_are_documented() -> None:
    """Every repository variable and secret a workflow reads is named in the README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for rel in WORKFLOWS:
        text = (ROOT / rel).read_text(encoding="utf-8")
        names = set(re.findall(r"\$\{\{\s*(?:vars|secrets)\.([A-Z0-9_]+)", text))
        undocumented = sorted(n for n in names if f"`{n}`" not in readme)
        assert not undocumented, f"{rel} reads {undocumented}, which README.md does not mention"


def _git_ignored(rel: str) -> bool:
    proc = subprocess.run(["git", "check-ignore", "-q", rel], cwd=ROOT, capture_output=True)
    return proc.returncode == 0


@pytest.mark.parametrize("rel", DOCS)
def test_figures_live_in_tracked_files(rel: str) -> None:
    """A document may say where figures, results or reports are kept only if a clone has that place."""
    text = (ROOT / rel).read_text(encoding="utf-8")
    bad = []
    for m in re.finditer(r"(?:results|figures|numbers)[^.\n]{0,40}?\bin\s+`([\w./-]+)`", text):
        path = m.group(1)
        if (ROOT / path).parent.exists() and _git_ignored(path):
            bad.append(path)
    assert not bad, f"{rel} keeps figures in git-ignored places {bad}: a clone does not have them"


@pytest.mark.parametrize(
    "script", ["code/sentiment_multimodel.py", "code/streaming_serving_mlflow_hdfs_kafka_optimize.py"]
)
def test_job_help_descriptions_are_whole_sentences(script: str) -> None:
    """The flow documentation sends users to `--help`: its description must not stop mid-sentence."""
    proc = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The description is the paragraph between the usage lines and the first option section.
    paragraphs = [p.strip() for p in proc.stdout.split("\n\n") if p.strip()]
    description = next(p for p in paragraphs[1:] if not p.lower().startswith(("options", "optional", "positional")))
    assert description.rstrip().endswith((".", ")", ":")), f"--help description is cut off: {description[-80:]!r}"


def test_bootstrap_refuses_python_older_than_the_readme_promises(tmp_path: Path) -> None:
    """README: bootstrap creates .venv with Python 3.11 or newer, and stops with a clear error otherwise."""
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Python 3.9.18"; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/bootstrap.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "SENTIMENT_VENV": str(tmp_path / "venv")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Python 3.11 or newer is needed" in proc.stderr and "3.9.18" in proc.stderr
    assert not (tmp_path / "venv").exists()
