"""The serving job's test-only crash switch: it kills the process only for the batch it names, and
never on a cluster master (a stray variable must not stop a production job)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sentiment_mlops.serving.crash_point import CRASH_AFTER_WRITE_ENV, CRASH_EXIT_CODE


def _after_write(batch_id: int, master: str, value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_AFTER_WRITE_ENV}
    if value is not None:
        env[CRASH_AFTER_WRITE_ENV] = value
    code = (
        "import sys; from sentiment_mlops.serving.crash_point import after_write; "
        f"after_write({batch_id}, {master!r}); print('went on'); sys.exit(0)"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("batch_id", "master", "value", "exits"),
    [
        (1, "local[2]", "1", True),
        (1, "local", " 1 ", True),
        (0, "local[2]", "1", False),  # another batch
        (1, "local[2]", None, False),  # unset: what every user runs
        (1, "yarn", "1", False),  # a cluster: ignored
    ],
)
def test_crash_switch(batch_id: int, master: str, value: str | None, exits: bool) -> None:
    done = _after_write(batch_id, master, value)
    if exits:
        assert done.returncode == CRASH_EXIT_CODE and "went on" not in done.stdout
    else:
        assert done.returncode == 0 and done.stdout.strip() == "went on", done.stderr
    if master == "yarn":
        assert "ignored" in done.stderr


def test_no_job_spec_or_script_sets_the_switch() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    places = [*root.glob("code/**/*.py"), *root.glob("airflow/**/*.py"), *root.glob("scripts/*"), *root.glob("*.sh")]
    setters = [p for p in places if p.is_file() and CRASH_AFTER_WRITE_ENV in p.read_text(errors="replace")]
    assert [p.relative_to(root).as_posix() for p in setters] == ["code/sentiment_mlops/serving/crash_point.py"]
