"""The supervisor of a local job: the small process that runs one job's spark-submit in its own
session, outlives the Airflow task that submitted it, and records how the driver ended
(`JOB_ID.exit`), which nobody else could collect from an orphan. Also ends a job's whole session.

    python -m sentiment_mlops.backends.local.supervisor JOBS_DIR JOB_ID   (started by backends.local.jobs)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentiment_mlops.core.processes import pid_alive


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def kill_group(pid: int, timeout: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM everything the job started, SIGKILL what is left after `timeout`.

    The supervisor leads its own session; its process group holds spark-submit's JVM and the Python
    driver, but PySpark's worker daemon moves itself into a new group (setpgid), so members are found
    by session id too."""
    signal_session(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None:
            child.poll()
        if not pid_alive(pid) and not session_members(pid):
            return
        time.sleep(0.2)
    signal_session(pid, signal.SIGKILL)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def signal_session(sid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(sid), sig)
    for member in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, sig)


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session `sid`, from /proc."""
    members = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(proc.name))
    return members


def supervise(jobs_dir: Path, job_id: str) -> int:
    """Run the job's command, then write `JOB_ID.exit`. Ignores SIGTERM so a cancel's group-wide
    SIGTERM reaches spark-submit while this process stays to record how the driver ended."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record = json.loads((jobs_dir / f"{job_id}.json").read_text())
    log_path = Path(str(record["driver_output_uri"]).removeprefix("file://"))  # JobRecord.log_path
    with open(log_path, "ab") as log:
        log.write(f"[local-jobs] {_now()} starting: {' '.join(record['command'])}\n".encode())
        log.flush()
        try:
            # The child must not inherit the ignored SIGTERM, or cancel could only SIGKILL it.
            child = subprocess.Popen(
                record["command"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
            )
            code = child.wait()
        except OSError as exc:
            log.write(f"[local-jobs] ERROR: cannot start spark-submit: {exc}\n".encode())
            code = 127
        log.write(f"[local-jobs] {_now()} driver exited with code {code}\n".encode())
    tmp = jobs_dir / f"{job_id}.exit.tmp"
    tmp.write_text(json.dumps({"exit_code": code, "ended_at": _now()}))
    os.replace(tmp, jobs_dir / f"{job_id}.exit")
    return 0


def tail_lines(path: Path, n: int = 50, block: int = 65536) -> list[str]:
    """The last `n` lines of a (possibly large, growing) text file without reading all of it."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            data = b""
            pos = size
            while pos > 0 and data.count(b"\n") <= n:
                step = min(block, pos)
                pos -= step
                handle.seek(pos)
                data = handle.read(step) + data
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-n:] if n > 0 else []


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# -- module-level API for the current settings (SENTIMENT_HOME) ------------------------------------


if __name__ == "__main__":
    if len(sys.argv) == 3:
        sys.exit(supervise(Path(sys.argv[1]), sys.argv[2]))
    print("usage: python -m sentiment_mlops.backends.local.supervisor JOBS_DIR JOB_ID (internal)")
    sys.exit(2)
