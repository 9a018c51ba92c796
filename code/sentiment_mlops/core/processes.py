"""Is a pid still our process? Liveness checks shared by the local job runner (local_jobs) and the local
Kafka broker (local_kafka), which both find their processes again from pids on disk."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, the state (field 3) first; None where
    /proc is missing or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return stat.rsplit(")", 1)[1].split()


def cmdline(pid: int) -> list[str] | None:
    """The argv of `pid` from /proc; None where the process is gone or /proc is missing. The pid-reuse
    guards of the local services (MLflow, Tansu, Spark daemons) check it before signalling a pid."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")


def start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks (field 22 of /proc/PID/stat); None where /proc is missing."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def pid_alive(pid: int, ticks: int | None = None) -> bool:
    """True while `pid` is a live process: not gone, not a zombie, and, given its start_ticks() `ticks`,
    not a reused pid. An exited child of ours is reaped first, so it does not linger as a zombie;
    without /proc, kill(0) decides."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc: trust kill(0)
    if fields[0] == "Z":
        return False
    return ticks is None or start_ticks(pid) == ticks
