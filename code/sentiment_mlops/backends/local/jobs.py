"""The local backend's job controller: runs the same Dataproc Job dict a DAG would send to Dataproc,
with this venv's `spark-submit`, and keeps Dataproc-like job records on disk.

- `gs://` URIs (main file, py/jar/file URIs, argument values) go through `storage.resolve_uri`, so a
  job built for Dataproc reads and writes the local bucket folders.
- Job `properties` become `--conf`; `spark.jars.packages` is dropped (Maven is unreachable here; the
  serving job falls back to its Python Kafka reader).
- Each job runs under a small supervisor process (`python -m sentiment_mlops.backends.local.supervisor`)
  in its own session: the supervisor outlives the Airflow task that submitted it (a serving job must)
  and records the driver's exit code, which nobody else could collect from an orphan.
- With `SENTIMENT_SPARK_MASTER=spark://HOST:PORT` (Settings.spark_master) jobs go to that standalone
  master (see :mod:`~sentiment_mlops.backends.local.spark_cluster`) the way Dataproc runs them: from a
  fresh working directory (`JOB_ID.cwd`), without PYTHONPATH, with an interpreter that cannot see the
  package's source folders, so the code comes only from the `--py-files` zip. Before anything starts,
  the master must answer and the zip must hold every module the job imports; executors get the
  cluster's memory (SENTIMENT_SPARK_EXECUTOR_MEMORY) and one core each, whatever the job asks for.
- Records live in `Settings.run_dir/jobs/JOB_ID.json`, the driver log in `JOB_ID.log`, the exit status
  in `JOB_ID.exit`. The state is refreshed from the process on every read: PENDING until the
  supervisor runs, RUNNING while it lives, then DONE / ERROR from the exit code, or CANCELLED.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentiment_mlops.backends.local.supervisor import kill_group, read_json, tail_lines
from sentiment_mlops.core.naming import BACKEND_PROPERTY, JOB_ID_RE
from sentiment_mlops.core.processes import pid_alive, start_ticks
from sentiment_mlops.core.settings import Settings, load_settings
from sentiment_mlops.core.storage import is_gcs_uri, resolve_uri

PENDING, RUNNING, DONE, ERROR, CANCELLED = "PENDING", "RUNNING", "DONE", "ERROR", "CANCELLED"
STATES = (PENDING, RUNNING, DONE, ERROR, CANCELLED)
ACTIVE_STATES = frozenset({PENDING, RUNNING})
TERMINAL_STATES = frozenset({DONE, ERROR, CANCELLED})

DROPPED_PROPERTIES = ("spark.jars.packages",)


class JobError(RuntimeError):
    pass


class JobNotFoundError(JobError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "job not found"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class JobRecord:
    """A job as Dataproc would describe it, plus the local process facts."""

    job_id: str
    state: str
    labels: dict[str, str]
    job: dict[str, Any]
    command: list[str]
    driver_output_uri: str
    submitted_at: str
    state_start_time: str
    pid: int | None = None
    pid_start_ticks: int | None = None  # /proc start time: guards against pid reuse
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    details: str = ""
    cancel_requested: bool = False
    attached: bool = False  # set (never stored) when a submit found this job already there
    status_history: list[dict[str, str]] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return Path(self.driver_output_uri.removeprefix("file://"))

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def as_dataproc(self) -> dict[str, Any]:
        """The record in the shape of `gcloud dataproc jobs describe` (snake_case like the Python client)."""
        return {
            "reference": {"project_id": "local", "job_id": self.job_id},
            "placement": self.job.get("placement", {"cluster_name": "local"}),
            "pyspark_job": self.job.get("pyspark_job", {}),
            "labels": self.labels,
            "status": {"state": self.state, "state_start_time": self.state_start_time, "details": self.details},
            "status_history": self.status_history,
            "driver_output_resource_uri": self.driver_output_uri,
            "local": {
                "pid": self.pid,
                "command": self.command,
                "submitted_at": self.submitted_at,
                "started_at": self.started_at,
                "ended_at": self.ended_at,
                "exit_code": self.exit_code,
            },
        }


class LocalJobController:
    """Job records under `run_dir/jobs`; the module-level functions use one for the current settings."""

    # Supervisors this process started, shared by all controllers: waited on (no zombies) by cancel.
    _children: dict[str, subprocess.Popen[bytes]] = {}

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings("local")
        if self.settings.backend != "local":
            # Resolving gs:// must map to bucket folders whatever SENTIMENT_BACKEND says.
            self.settings = Settings(backend="local", home=self.settings.home, spark_master=self.settings.spark_master)
        self.jobs_dir = self.settings.run_dir / "jobs"

    # -- files -------------------------------------------------------------------------------------
    def _record_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def _exit_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.exit"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One lock for all records: refreshes in different processes (Airflow tasks, the CLI) and a
        cancel must not overwrite each other's state changes."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.jobs_dir / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self, job_id: str) -> JobRecord:
        path = self._record_path(job_id)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise JobNotFoundError(f"job {job_id!r} not found in {self.jobs_dir}") from None
        return JobRecord(**data)

    def _save(self, record: JobRecord) -> None:
        path = self._record_path(record.job_id)
        tmp = path.with_suffix(f".json.tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(record), indent=2))
        os.replace(tmp, path)  # readers never see half a record

    @staticmethod
    def _set_state(record: JobRecord, state: str, details: str = "") -> None:
        if record.state == state:
            return
        record.state = state
        record.state_start_time = _now()
        record.details = details
        record.status_history.append({"state": state, "state_start_time": record.state_start_time})

    # -- command -----------------------------------------------------------------------------------
    def _resolve(self, uri: str) -> str:
        return resolve_uri(uri, self.settings)

    def _resolve_arg(self, arg: str) -> str:
        if is_gcs_uri(arg):
            return self._resolve(arg)
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            if is_gcs_uri(value):
                return f"{flag}={self._resolve(value)}"
        return arg

    def build_command(self, job: dict[str, Any]) -> list[str]:
        """The spark-submit command line for a Dataproc PySpark Job dict."""
        pyspark_job = job.get("pyspark_job")
        if not pyspark_job:
            kinds = ", ".join(k for k in job if k.endswith("_job")) or "none"
            raise JobError(f"the local backend runs pyspark_job jobs only (job has: {kinds})")
        main = pyspark_job.get("main_python_file_uri")
        if not main:
            raise JobError("pyspark_job.main_python_file_uri is required")
        from sentiment_mlops.core.spark_session import LOCAL_DEFAULTS

        master = self.settings.spark_master or os.environ.get(
            "SENTIMENT_LOCAL_MASTER", os.environ.get("SPARK_MASTER", "local[2]")
        )
        cmd = [
            str(spark_submit_path()),
            "--master",
            master,
            "--name",
            job_id_of(job) or "sentiment-job",
            "--driver-memory",
            os.environ.get("SPARK_DRIVER_MEMORY", LOCAL_DEFAULTS["spark.driver.memory"]),
        ]
        for option, key in (("--py-files", "python_file_uris"), ("--jars", "jar_file_uris"), ("--files", "file_uris")):
            uris = [self._resolve(u) for u in pyspark_job.get(key) or []]
            if uris:
                cmd += [option, ",".join(uris)]
        archives = [self._resolve(u) for u in pyspark_job.get("archive_uris") or []]
        if archives:
            cmd += ["--archives", ",".join(archives)]
        # Local-mode defaults first (what get_spark applies outside spark-submit), then the job's own
        # properties, so a job can still override them; the backend is always local here.
        conf = {k: v for k, v in LOCAL_DEFAULTS.items() if k != "spark.driver.memory"}
        for key, value in (pyspark_job.get("properties") or {}).items():
            if key in DROPPED_PROPERTIES or key.startswith("dataproc:"):
                continue
            conf[key] = self._resolve_arg(str(value))
        conf[BACKEND_PROPERTY] = "local"
        if self.settings.spark_master:
            conf.update(self._cluster_conf())
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        cmd.append(self._resolve(main))
        cmd += [self._resolve_arg(str(a)) for a in pyspark_job.get("args") or []]
        return cmd

    # -- the standalone cluster --------------------------------------------------------------------
    def _cluster_conf(self) -> dict[str, str]:
        """What a job gets on the local cluster instead of its Dataproc sizes: executors that fit a
        worker (an executor bigger than every worker would leave the job waiting forever)."""
        return {
            "spark.executor.memory": self.settings.cluster_executor_memory,
            "spark.executor.cores": "1",
        }

    def _cluster_command(self, job_id: str, command: list[str], job: dict[str, Any]) -> list[str]:
        """`command` wrapped to run as on a cluster: checked master and zip, own cwd, clean env."""
        from sentiment_mlops.backends.local import spark_cluster
        from sentiment_mlops.jobs.packaging import missing_modules

        pyspark_job = job["pyspark_job"]
        main = Path(self._resolve(pyspark_job["main_python_file_uri"]))
        for uri in pyspark_job.get("python_file_uris") or []:
            path = Path(self._resolve(uri))
            if not path.is_file():
                raise JobError(f"--py-files {uri} not found (local file {path}): upload the code first")
            if path.suffix == ".zip":
                problems = missing_modules(path, (main,) if main.is_file() else ())
                if problems:
                    raise JobError(f"{uri} is missing module(s) the job imports: {'; '.join(problems)}")
        try:
            spark_cluster.check_master(str(self.settings.spark_master), self.settings.spark_cluster_dir)
        except spark_cluster.ClusterError as exc:
            raise JobError(str(exc)) from None
        workdir = self.jobs_dir / f"{job_id}.cwd"
        workdir.mkdir(parents=True, exist_ok=True)
        python = spark_cluster.job_python(self.settings.spark_cluster_dir)
        env = [
            "env",
            "-u",
            "PYTHONPATH",
            f"--chdir={workdir}",
            f"PYSPARK_PYTHON={python}",
            f"PYSPARK_DRIVER_PYTHON={python}",
        ]
        return [*env, *command]

    def job_env(self) -> dict[str, str]:
        python = sys.executable
        return {
            **os.environ,
            "SENTIMENT_BACKEND": "local",
            "SENTIMENT_HOME": str(self.settings.home),
            "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", python),
            "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON", python),
            "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
            # spark-submit must find the venv (java, python workers) even when PATH lacks it.
            "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    # -- API ---------------------------------------------------------------------------------------
    def submit(
        self, job: dict[str, Any], wait: bool = False, timeout: float | None = None, request_id: str | None = None
    ) -> JobRecord:
        """Start `job`; with `wait`, block until it ends (and cancel it if the waiter is interrupted).

        A job id that exists already is not an error: like a repeated Dataproc request, the call
        attaches to that job (returned with `attached` set, waited for with `wait`) whatever its
        state; choosing a new id after a failure is the caller's business. `request_id` is accepted
        for the Dataproc signature; here the job id alone identifies a submission."""
        job = json.loads(json.dumps(job))  # a private, JSON-clean copy (the record stores it)
        job_id = job_id_of(job) or new_job_id(job)
        if not JOB_ID_RE.match(job_id):
            raise JobError(f"invalid job id {job_id!r}: letters, digits, '_' and '-' only, at most 100 characters")
        job.setdefault("reference", {})["job_id"] = job_id
        command = self.build_command(job)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.spark_master:
            command = self._cluster_command(job_id, command, job)
        log_path = self.jobs_dir / f"{job_id}.log"
        now = _now()
        record = JobRecord(
            job_id=job_id,
            state=PENDING,
            labels={str(k): str(v) for k, v in (job.get("labels") or {}).items()},
            job=job,
            command=command,
            driver_output_uri=f"file://{log_path}",
            submitted_at=now,
            state_start_time=now,
            status_history=[{"state": PENDING, "state_start_time": now}],
        )
        with self._lock():
            exists = self._record_path(job_id).exists()
            if not exists:
                self._save(record)
        if exists:
            return self._attach(job_id, wait, timeout)
        # The supervisor gets its own session: it and spark-submit's JVM and Python driver form one
        # process group that cancel() can signal as a whole, apart from the submitting process.
        with open(log_path, "ab") as supervisor_errors:  # a supervisor crash lands in the driver log
            process = subprocess.Popen(
                [sys.executable, "-m", "sentiment_mlops.backends.local.supervisor", str(self.jobs_dir), job_id],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=supervisor_errors,
                env=self.job_env(),
                start_new_session=True,
                close_fds=True,
            )
        with self._lock():
            record = self._load(job_id)
            record.pid = process.pid
            record.pid_start_ticks = start_ticks(process.pid)
            record.started_at = _now()
            self._save(record)
        self._children[job_id] = process
        if not wait:
            return self.get(job_id)
        with self._cancel_if_interrupted(job_id, timeout):
            process.wait(timeout=timeout)
        return self.get(job_id)

    @contextlib.contextmanager
    def _cancel_if_interrupted(self, job_id: str, timeout: float | None) -> Iterator[None]:
        """Cancel the job when its waiter times out or is interrupted."""
        try:
            yield
        except (subprocess.TimeoutExpired, TimeoutError):
            self.cancel(job_id)
            raise JobError(f"job {job_id} did not finish within {timeout:.0f}s; cancelled") from None
        except BaseException:
            # Airflow kills a task with SIGTERM -> exception here: the job must not outlive its task.
            self.cancel(job_id)
            raise

    def _attach(self, job_id: str, wait: bool, timeout: float | None, poll_s: float = 1.0) -> JobRecord:
        """The existing job `job_id` (a repeated submission); with `wait`, polled until it ends: the
        process may belong to another (dead) task, so there is no child to wait on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cancel_if_interrupted(job_id, timeout):
            record = self.get(job_id)
            while wait and record.active:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(job_id)
                time.sleep(poll_s)
                record = self.get(job_id)
        record.attached = True
        return record

    def get(self, job_id: str) -> JobRecord:
        with self._lock():
            record = self._load(job_id)
            if self._refresh(record):
                self._save(record)
        return record

    def _refresh(self, record: JobRecord) -> bool:
        """Derive the state from the process and its exit file; True when the record changed."""
        if record.state in TERMINAL_STATES:
            return False
        before = (record.state, record.exit_code)
        exit_info = read_json(self._exit_path(record.job_id))
        if exit_info is not None:
            record.exit_code = int(exit_info.get("exit_code", -1))
            record.ended_at = exit_info.get("ended_at") or _now()
            if record.cancel_requested:
                self._set_state(record, CANCELLED, "cancelled by user")
            elif record.exit_code == 0:
                self._set_state(record, DONE)
            else:
                self._set_state(
                    record, ERROR, f"driver exited with code {record.exit_code}: {self._last_error(record)}"
                )
        elif record.pid is None:
            pass  # still PENDING: the supervisor has not been started yet
        elif pid_alive(record.pid, record.pid_start_ticks):
            if not record.cancel_requested:
                self._set_state(record, RUNNING)
        else:
            record.ended_at = record.ended_at or _now()
            if record.cancel_requested:
                self._set_state(record, CANCELLED, "cancelled by user")
            else:
                self._set_state(record, ERROR, "driver process ended without an exit status (killed?)")
        return (record.state, record.exit_code) != before

    def _last_error(self, record: JobRecord) -> str:
        """The most telling log line: the last exception/ERROR line, else the last line."""
        lines = self.log_tail(record.job_id, 200, _record=record)
        for line in reversed(lines):
            if re.search(r"(Error|Exception|ERROR)\b", line):
                return line.strip()[:500]
        return lines[-1].strip()[:500] if lines else "(empty driver log)"

    def list_jobs(self, state_filter: str | None = None, label_filter: dict[str, str] | None = None) -> list[JobRecord]:
        """Newest first. `state_filter`: active | inactive (non_active) | a state name."""
        if not self.jobs_dir.exists():
            return []
        wanted = _states_for(state_filter)
        records = []
        for path in self.jobs_dir.glob("*.json"):
            try:
                record = self.get(path.stem)
            except (JobNotFoundError, json.JSONDecodeError, TypeError):
                continue  # a record removed or foreign file: not a job
            if wanted is not None and record.state not in wanted:
                continue
            if label_filter and any(record.labels.get(k) != str(v) for k, v in label_filter.items()):
                continue
            records.append(record)
        return sorted(records, key=lambda r: (r.submitted_at, r.job_id), reverse=True)

    def cancel(self, job_id: str, timeout: float = 20.0) -> JobRecord:
        """SIGTERM the job's process group, SIGKILL what is left after `timeout`; state CANCELLED."""
        with self._lock():
            record = self._load(job_id)
            self._refresh(record)
            if record.state in TERMINAL_STATES:
                self._save(record)
                return record
            record.cancel_requested = True
            self._save(record)
        if record.pid is not None and pid_alive(record.pid, record.pid_start_ticks):
            kill_group(record.pid, timeout, self._children.get(job_id))
        with self._lock():
            record = self._load(job_id)
            record.ended_at = record.ended_at or _now()
            exit_info = read_json(self._exit_path(job_id))
            if exit_info is not None:
                record.exit_code = int(exit_info.get("exit_code", -1))
            self._set_state(record, CANCELLED, "cancelled by user")
            self._save(record)
        return record

    def log_tail(self, job_id: str, n: int = 50, _record: JobRecord | None = None) -> list[str]:
        record = _record or self._load(job_id)
        return tail_lines(record.log_path, n)


def spark_submit_path() -> Path:
    """`spark-submit` of this venv's pyspark (next to the interpreter), else SPARK_HOME's."""
    candidate = Path(sys.executable).with_name("spark-submit")
    if candidate.exists():
        return candidate
    spark_home = os.environ.get("SPARK_HOME")
    if spark_home and (Path(spark_home) / "bin" / "spark-submit").exists():
        return Path(spark_home) / "bin" / "spark-submit"
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def job_id_of(job: dict[str, Any]) -> str | None:
    return (job.get("reference") or {}).get("job_id") or None


def new_job_id(job: dict[str, Any]) -> str:
    """`<app label or 'job'>-YYYYmmdd-HHMMSS-<hex>`: sortable and unique like Dataproc's ids."""
    base = re.sub(r"[^A-Za-z0-9_-]", "-", str((job.get("labels") or {}).get("app", "job")))[:60]
    return f"{base}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _states_for(state_filter: str | None) -> frozenset[str] | None:
    if not state_filter:
        return None
    value = state_filter.strip().upper()
    if value == "ACTIVE":
        return ACTIVE_STATES
    if value in ("INACTIVE", "NON_ACTIVE"):
        return TERMINAL_STATES
    if value in STATES:
        return frozenset({value})
    raise ValueError(f"unknown state filter {state_filter!r}; allowed: active, inactive, {', '.join(STATES)}")


def controller() -> LocalJobController:
    return LocalJobController(load_settings("local"))


def submit(
    job: dict[str, Any], wait: bool = False, timeout: float | None = None, request_id: str | None = None
) -> JobRecord:
    return controller().submit(job, wait=wait, timeout=timeout, request_id=request_id)


def get(job_id: str) -> JobRecord:
    return controller().get(job_id)


def list_jobs(state_filter: str | None = None, label_filter: dict[str, str] | None = None) -> list[JobRecord]:
    return controller().list_jobs(state_filter, label_filter)


def cancel(job_id: str, timeout: float = 20.0) -> JobRecord:
    return controller().cancel(job_id, timeout)


def log_tail(job_id: str, n: int = 50) -> list[str]:
    return controller().log_tail(job_id, n)
