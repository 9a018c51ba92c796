"""A Spark standalone cluster on this machine: one master and N workers on 127.0.0.1, started from the
pip `pyspark` (`spark-class ...deploy.master.Master` / `...deploy.worker.Worker`; nothing downloaded).

python -m sentiment_mlops.backends.local.spark_cluster start [--port 7077] [--ui-port 8980] [--workers 2]
python -m sentiment_mlops.backends.local.spark_cluster status | stop

With `SENTIMENT_SPARK_MASTER=spark://127.0.0.1:7077` the local job runner sends every job to it with
`spark-submit --master spark://... --py-files sentiment_mlops.zip`, like Dataproc: the driver and the
executors are separate JVMs, the package arrives only as the zip, and executors read the files.

Why: `local[2]` runs driver and executors in one JVM with the package installed in the driver's
virtualenv, which hides what breaks on a real cluster (code that only the driver can import, state kept
in the driver, files only the driver sees). Each worker gets 1 core and 1 GB by default so the cluster
fits a 2-core machine. The master's web UI defaults to port 8980 (8080 is Airflow's webserver); its JSON
(`/json/`) is how `status` and the job runner see the alive workers.

Files: `$SENTIMENT_HOME/spark-cluster/` holds `run/` (pid files, `cluster.json`), `logs/` (one log per
daemon), `work/worker-N` (the workers' application folders: executor logs, the fetched zip) and
`local/worker-N` (shuffle scratch). Daemons started from Python (tests) die with the thread that started
them; the CLI starts them detached.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sentiment_mlops.backends.local.kafka_broker import _die_with_parent
from sentiment_mlops.backends.local.mlflow_server import ServiceError, port_in_use
from sentiment_mlops.backends.local.supervisor import session_members, signal_session
from sentiment_mlops.core.processes import cmdline, pid_alive
from sentiment_mlops.core.settings import SPARK_MASTER_ENV, load_settings

DEFAULT_MASTER_PORT = 7077
DEFAULT_UI_PORT = 8980
DEFAULT_WORKERS = 2
DEFAULT_WORKER_CORES = 1
DEFAULT_WORKER_MEMORY = "1g"
DAEMON_MEMORY = "512m"  # heap of the master and worker JVMs themselves (Spark's default is 1g each)
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
STATE_FILE = "cluster.json"


class ClusterError(ServiceError):
    """A cluster that cannot start or does not answer; the message says what to do."""


def spark_class() -> Path:
    """`spark-class` of the installed pyspark."""
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not path.is_file():
        raise ClusterError(f"pyspark at {path.parent.parent} has no bin/spark-class; reinstall pyspark")
    return path


def java_binary(env: dict[str, str] | None = None) -> str:
    """The `java` the daemons will run (JAVA_HOME's, else PATH's); ClusterError when there is none."""
    env = dict(os.environ) if env is None else env
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
        raise ClusterError(f"JAVA_HOME={java_home} has no executable bin/java; fix JAVA_HOME or unset it")
    found = shutil.which("java", path=env.get("PATH"))
    if not found:
        raise ClusterError(
            "no Java for the Spark master and workers: install a JDK 17 "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return found


def parse_master_url(url: str) -> tuple[str, int]:
    """`spark://host:port` -> (host, port); ValueError for anything else (several masters included)."""
    parsed = urlparse(url)
    if parsed.scheme != "spark" or not parsed.hostname or "," in parsed.netloc:
        raise ValueError(f"not a Spark standalone master URL: {url!r} (expected spark://HOST:PORT)")
    return parsed.hostname, parsed.port or DEFAULT_MASTER_PORT


def master_json(ui_url: str, timeout: float = 3.0) -> dict[str, Any]:
    """The master's state from its web UI (`/json/`): status, workers with their state, active apps."""
    with urllib.request.urlopen(ui_url.rstrip("/") + "/json/", timeout=timeout) as resp:  # noqa: S310 - our UI
        return dict(json.loads(resp.read().decode()))


def alive_workers(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


def check_master(master_url: str, state_dir: Path | None = None, timeout: float = 5.0) -> None:
    """Raise ClusterError unless `master_url` accepts a connection and, when it is the cluster recorded
    in `state_dir` (this machine's), has at least one alive worker: an application sent to a master
    without workers would wait for executors forever."""
    hint = f"start one with `python -m sentiment_mlops.backends.local.spark_cluster start` or unset {SPARK_MASTER_ENV}"
    try:
        host, port = parse_master_url(master_url)
    except ValueError as exc:
        raise ClusterError(f"{exc}; {hint}") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"Spark master {master_url} ({SPARK_MASTER_ENV}) does not answer: {exc.strerror or exc}; {hint}"
        ) from None
    recorded = read_state(state_dir) if state_dir else None
    if not recorded or recorded.get("master_url") != master_url:
        return
    try:
        state = master_json(recorded["ui_url"], timeout)
    except (OSError, ValueError) as exc:
        raise ClusterError(
            f"Spark master {master_url} accepts connections but its UI {recorded['ui_url']} does not answer ({exc})"
        ) from None
    if not alive_workers(state):
        raise ClusterError(
            f"Spark master {master_url} has no alive worker: a job would wait for executors forever; "
            f"restart the cluster (`python -m sentiment_mlops.backends.local.spark_cluster start`)"
        )


_HIDE_PACKAGE = """\
# Written by sentiment_mlops.backends.local.spark_cluster. Python runs this before a job's code: it
# takes every folder holding the sentiment_mlops package off sys.path (an editable install's .pth, a
# source checkout), so a job on the cluster imports the package only from the --py-files zip, as on
# Dataproc, and a zip that misses a module fails here too.
import os
import sys

sys.path[:] = [
    p for p in sys.path if not os.path.isfile(os.path.join(p or os.getcwd(), "sentiment_mlops", "__init__.py"))
]
"""


def job_python(base_dir: Path, python: str | None = None) -> Path:
    """An interpreter for the cluster's drivers and executors: `python` (default: this one) with the
    package's source folders taken off sys.path. A shell script, since PYSPARK_PYTHON is a program
    name without arguments; it puts only the hiding `sitecustomize` in front of Spark's PYTHONPATH."""
    python = python or sys.executable
    root = base_dir / "python"
    site_dir, wrapper = root / "site", root / "bin" / "python"
    site_dir.mkdir(parents=True, exist_ok=True)
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    (site_dir / "sitecustomize.py").write_text(_HIDE_PACKAGE)
    script = f'#!/bin/sh\nPYTHONPATH="{site_dir}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{python}" "$@"\n'
    if not wrapper.is_file() or wrapper.read_text() != script:
        tmp = wrapper.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(script)
        tmp.chmod(0o755)
        tmp.replace(wrapper)
    return wrapper


def read_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((state_dir / "run" / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_spark_daemon(pid: int, main_class: str) -> bool:
    """Guards against pid reuse: only signal a JVM whose command line names the daemon's class."""
    argv = cmdline(pid)
    return argv is not None and main_class in "\0".join(argv)


@dataclass
class SparkCluster:
    """A master on 127.0.0.1:`port` (UI on `ui_port`) and `workers` workers of `worker_cores` cores and
    `worker_memory` each; files under `base_dir` (Settings.spark_cluster_dir)."""

    base_dir: Path
    port: int = DEFAULT_MASTER_PORT
    ui_port: int = DEFAULT_UI_PORT
    workers: int = DEFAULT_WORKERS
    worker_cores: int = DEFAULT_WORKER_CORES
    worker_memory: str = DEFAULT_WORKER_MEMORY
    host: str = "127.0.0.1"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}"

    def _pid_file(self, name: str) -> Path:
        return self.base_dir / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.base_dir / "logs" / f"{name}.log"

    def work_dir(self, index: int) -> Path:
        return self.base_dir / "work" / f"worker-{index}"

    def _daemon_env(self, scratch: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_") and k != "PYTHONPATH"}
        conf_dir = self.base_dir / "conf"  # empty: no spark-defaults.conf of the user's leaks in
        conf_dir.mkdir(parents=True, exist_ok=True)
        env.update(
            SPARK_LOCAL_IP=self.host,
            SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
            SPARK_CONF_DIR=str(conf_dir),
            SPARK_LOCAL_DIRS=str(scratch),
            SPARK_NO_DAEMONIZE="1",
            # Spark 4 opens a REST submission port (6066) by default: off, so two clusters never clash.
            SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
        )
        return env

    def _spawn(self, name: str, args: list[str], scratch: Path, detached: bool) -> int:
        scratch.mkdir(parents=True, exist_ok=True)
        self.log_file(name).parent.mkdir(parents=True, exist_ok=True)
        self._pid_file(name).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file(name), "ab") as log:
            # Own session: stop() and a test's SIGKILL reach the daemon and every executor and Python
            # worker it started, as when a machine goes away.
            process = subprocess.Popen(
                [str(spark_class()), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._daemon_env(scratch),
                cwd=scratch,
                start_new_session=True,
                preexec_fn=None if detached else _die_with_parent(os.getpid()),
            )
        self.processes[name] = process
        self._pid_file(name).write_text(str(process.pid))
        return process.pid

    def pid(self, name: str) -> int | None:
        """The live pid of daemon `name` ("master", "worker-1", ...), else None."""
        process = self.processes.get(name)
        if process is not None:
            return process.pid if process.poll() is None else None
        pid = _read_pid(self._pid_file(name))
        main_class = MASTER_CLASS if name == "master" else WORKER_CLASS
        return pid if pid is not None and pid_alive(pid) and _is_spark_daemon(pid, main_class) else None

    def state(self, timeout: float = 3.0) -> dict[str, Any]:
        return master_json(self.ui_url, timeout)

    def start(self, timeout: float = 120.0, detached: bool = False) -> SparkCluster:
        """Start the master, then the workers; return once the master lists every worker ALIVE."""
        java_binary()
        for port, what in ((self.port, "master"), (self.ui_port, "master web UI")):
            if port_in_use(port, self.host):
                raise ClusterError(
                    f"port {port} ({what}) on {self.host} is taken; stop that program or choose another port"
                )
        deadline = time.monotonic() + timeout
        self._spawn(
            "master",
            [MASTER_CLASS, "--host", self.host, "--port", str(self.port), "--webui-port", str(self.ui_port)],
            self.base_dir / "local" / "master",
            detached,
        )
        self._wait(lambda s: s.get("status") == "ALIVE", deadline, "the master to come up")
        for index in range(1, self.workers + 1):
            self.start_worker(index, detached=detached)
        self._wait(lambda s: len(alive_workers(s)) >= self.workers, deadline, f"{self.workers} alive workers")
        state_file = self.base_dir / "run" / STATE_FILE
        state_file.write_text(
            json.dumps({"master_url": self.master_url, "ui_url": self.ui_url, "workers": self.workers})
        )
        return self

    def start_worker(self, index: int, detached: bool = False, wait: float | None = None) -> int:
        """Start worker `index` (1-based); with `wait`, return once the master counts it ALIVE."""
        work = self.work_dir(index)
        work.mkdir(parents=True, exist_ok=True)
        before = len(alive_workers(self.state())) if wait else 0
        pid = self._spawn(
            f"worker-{index}",
            [
                WORKER_CLASS,
                "--host",
                self.host,
                "--cores",
                str(self.worker_cores),
                "--memory",
                self.worker_memory,
                "--work-dir",
                str(work),
                "--webui-port",
                str(self.ui_port + index),
                self.master_url,
            ],  # fmt: skip
            self.base_dir / "local" / f"worker-{index}",
            detached,
        )
        if wait:
            self._wait(lambda s: len(alive_workers(s)) > before, time.monotonic() + wait, f"worker-{index} to register")
        return pid

    def _wait(self, ready: Any, deadline: float, what: str) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            dead = [n for n, p in self.processes.items() if p.poll() is not None and n == "master"]
            if dead:
                self.stop()
                raise ClusterError(f"the Spark master exited during start-up; see {self.log_file('master')}")
            try:
                if ready(self.state(timeout=2.0)):
                    return
            except (OSError, ValueError) as exc:
                last = exc
            time.sleep(0.5)
        self.stop()
        raise ClusterError(f"timed out waiting for {what} ({last or 'not yet'}); logs in {self.base_dir / 'logs'}")

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to daemon `name` and everything it started (its executors and Python workers)."""
        pid = self.pid(name)
        if pid is None:
            raise ClusterError(f"{name} is not running")
        signal_session(pid, sig)
        process = self.processes.get(name)
        if process is not None:
            process.wait(timeout=30)
        return pid

    def stop(self, timeout: float = 20.0) -> list[str]:
        """Stop the workers, then the master (SIGTERM, SIGKILL after `timeout`); returns what was stopped."""
        stopped = []
        recorded = {p.stem for p in (self.base_dir / "run").glob("worker-*.pid")}
        names = sorted(
            recorded | {f"worker-{i}" for i in range(1, self.workers + 1)} | set(self.processes) - {"master"}
        )
        names.append("master")
        for name in names:
            pid = self.pid(name)
            if pid is not None:
                signal_session(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while (pid_alive(pid) or session_members(pid)) and time.monotonic() < deadline:
                    if name in self.processes:
                        self.processes[name].poll()
                    time.sleep(0.2)
                if pid_alive(pid) or session_members(pid):  # never signal a pid freed (and maybe reused) meanwhile
                    signal_session(pid, signal.SIGKILL)
                if name in self.processes:
                    self.processes[name].wait(timeout=10)
                stopped.append(name)
            self._pid_file(name).unlink(missing_ok=True)
            self.processes.pop(name, None)
        (self.base_dir / "run" / STATE_FILE).unlink(missing_ok=True)
        return stopped


def cluster_for(port: int, ui_port: int, workers: int, memory: str = DEFAULT_WORKER_MEMORY) -> SparkCluster:
    return SparkCluster(
        load_settings().spark_cluster_dir, port=port, ui_port=ui_port, workers=workers, worker_memory=memory
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="local Spark standalone cluster (master + workers on 127.0.0.1)")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--port", type=int, default=DEFAULT_MASTER_PORT)
    parser.add_argument("--ui-port", type=int, default=DEFAULT_UI_PORT)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--worker-memory", default=DEFAULT_WORKER_MEMORY)
    args = parser.parse_args(argv)
    cluster = cluster_for(args.port, args.ui_port, args.workers, args.worker_memory)
    try:
        if args.action == "start":
            cluster.start(detached=True)
            print(
                f"Spark master {cluster.master_url} with {args.workers} workers "
                f"({DEFAULT_WORKER_CORES} core, {args.worker_memory} each); UI {cluster.ui_url}; "
                f"logs {cluster.base_dir / 'logs'}\n"
                f"send jobs to it: export {SPARK_MASTER_ENV}={cluster.master_url}"
            )
        elif args.action == "stop":
            stopped = cluster.stop()
            print(
                f"stopped: {', '.join(stopped)}"
                if stopped
                else f"no Spark cluster daemons recorded in {cluster.base_dir / 'run'}"
            )
        else:
            try:
                state = cluster.state()
            except (OSError, ValueError) as exc:
                print(f"Spark master at {cluster.master_url}: not answering ({exc})")
                return 1
            workers = alive_workers(state)
            print(f"Spark master at {cluster.master_url}: {state.get('status')}, {len(workers)} alive worker(s), "
                  f"{len(state.get('activeapps', []))} running application(s); UI {cluster.ui_url}")  # fmt: skip
            return 0 if state.get("status") == "ALIVE" and workers else 1
    except (ServiceError, OSError, urllib.error.URLError) as exc:
        print(f"ERROR: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
