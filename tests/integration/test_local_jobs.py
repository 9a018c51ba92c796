"""local_jobs + sentiment-jobs CLI: real spark-submit runs of tiny Dataproc Job dicts."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentiment_mlops.backends.local import jobs as local_jobs
from sentiment_mlops.backends.local import jobs_cli as local_jobs_cli
from sentiment_mlops.backends.local.jobs import CANCELLED, DONE, ERROR, PENDING, RUNNING, JobError, LocalJobController
from sentiment_mlops.backends.local.supervisor import session_members
from sentiment_mlops.core.settings import Settings

pytestmark = pytest.mark.integration

SPARK_SCRIPT = """
import json, os, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
out = {
    "argv": sys.argv[1:],
    "count": spark.range(5).count(),
    "backend_conf": spark.conf.get("spark.sentiment.backend"),
    "packages": spark.conf.get("spark.jars.packages", None),
    "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    "env_backend": os.environ.get("SENTIMENT_BACKEND"),
}
target = sys.argv[2]
os.makedirs(os.path.dirname(target), exist_ok=True)
open(target, "w").write(json.dumps(out))
spark.stop()
"""
FAILING_SCRIPT = 'print("loading input"); raise ValueError("boom: the input has no text column")\n'
OK_SCRIPT = 'print("nothing to do")\n'
SLEEP_SCRIPT = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(600)
"""


# Each test gets its own home and controller and makes the jobs it looks at, so tests pass alone and
# in any order.
@pytest.fixture()
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("jobs_home")
    code = home / "buckets" / "test-code" / "jobs"
    code.mkdir(parents=True)
    (code / "spark_job.py").write_text(SPARK_SCRIPT)
    (code / "ok.py").write_text(OK_SCRIPT)
    (code / "failing.py").write_text(FAILING_SCRIPT)
    (code / "sleeper.py").write_text(SLEEP_SCRIPT)
    return home


@pytest.fixture()
def ctl(home: Path) -> Iterator[LocalJobController]:
    controller = LocalJobController(Settings(backend="local", home=home))
    yield controller
    for record in controller.list_jobs("active"):  # never leave a JVM behind
        controller.cancel(record.job_id, timeout=5)


@pytest.fixture()
def cli_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENTIMENT_HOME", str(home))
    monkeypatch.delenv("SENTIMENT_BUCKET_ROOT", raising=False)
    return home


def job(job_id: str, script: str, args: list[str] | None = None, app: str = "test-app", **props: str) -> dict:
    return {
        "reference": {"project_id": "", "job_id": job_id},
        "placement": {"cluster_name": "local"},
        "labels": {"app": app, "case": job_id.split("-")[0]},
        "pyspark_job": {
            "main_python_file_uri": f"gs://test-code/jobs/{script}",
            "python_file_uris": [],
            "args": args or [],
            "properties": props,
        },
    }


def wait_for(ctl: LocalJobController, job_id: str, states: set[str], timeout: float = 240) -> local_jobs.JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = ctl.get(job_id)
        if record.state in states:
            return record
        time.sleep(0.5)
    raise AssertionError(f"{job_id} still {ctl.get(job_id).state}; log:\n" + "\n".join(ctl.log_tail(job_id, 30)))


def ended_jobs(ctl: LocalJobController) -> None:
    """One DONE (done-1), one ERROR (error-1) and one CANCELLED (cancel-1) job."""
    assert ctl.submit(job("done-1", "ok.py"), wait=True).state == DONE, "\n".join(ctl.log_tail("done-1", 30))
    assert ctl.submit(job("error-1", "failing.py"), wait=True).state == ERROR
    ctl.submit(job("cancel-1", "sleeper.py", ["/dev/null"], app="sentiment-serving"))
    assert ctl.cancel("cancel-1", timeout=15).state == CANCELLED


def test_build_command_maps_gs_uris_and_properties(ctl: LocalJobController, home: Path) -> None:
    spec = job(
        "cmd-1",
        "spark_job.py",
        ["--input=gs://raw-b/data.csv", "gs://out-b/x", "--plain=value"],
        **{"spark.jars.packages": "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1", "spark.executor.memory": "1g"},
    )
    spec["pyspark_job"]["python_file_uris"] = ["gs://test-code/jobs/pkg.zip"]
    spec["pyspark_job"]["properties"]["spark.sentiment.backend"] = "dataproc"
    cmd = ctl.build_command(spec)
    buckets = home / "buckets"
    assert cmd[0].endswith("spark-submit") and Path(cmd[0]).exists()
    assert cmd[cmd.index("--master") + 1].startswith("local[")
    assert cmd[cmd.index("--py-files") + 1] == str(buckets / "test-code/jobs/pkg.zip")
    confs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--conf"]
    assert "spark.executor.memory=1g" in confs
    assert "spark.sentiment.backend=local" in confs and "spark.sentiment.backend=dataproc" not in confs
    assert not any(c.startswith("spark.jars.packages") for c in confs)  # Maven is unreachable here
    assert cmd[-4:] == [
        str(buckets / "test-code/jobs/spark_job.py"),
        f"--input={buckets / 'raw-b/data.csv'}",
        str(buckets / "out-b/x"),
        "--plain=value",
    ]
    with pytest.raises(JobError, match="pyspark_job"):
        ctl.build_command({"spark_job": {"main_class": "x"}})


def test_done_job_goes_pending_running_done(ctl: LocalJobController, home: Path) -> None:
    out = home / "buckets" / "out-b" / "result.json"
    record = ctl.submit(
        job("done-1", "spark_job.py", ["first", "gs://out-b/result.json"], **{"spark.jars.packages": "a:b:1"})
    )
    assert record.state in (PENDING, RUNNING)
    assert (ctl.jobs_dir / "done-1.json").exists()
    record = wait_for(ctl, "done-1", {DONE, ERROR, CANCELLED})
    assert record.state == DONE, "\n".join(ctl.log_tail("done-1", 40))
    assert [h["state"] for h in record.status_history] == [PENDING, RUNNING, DONE]
    assert record.exit_code == 0 and record.ended_at and record.started_at
    result = json.loads(out.read_text())
    assert result["argv"] == ["first", str(out)]
    assert result["count"] == 5
    assert result["backend_conf"] == "local" and result["env_backend"] == "local"
    assert result["packages"] is None
    assert result["partitions"] == "8"  # local defaults applied under spark-submit too
    described = record.as_dataproc()
    assert described["status"]["state"] == DONE
    assert described["reference"]["job_id"] == "done-1"
    assert described["driver_output_resource_uri"].startswith("file://")
    assert any("driver exited with code 0" in line for line in ctl.log_tail("done-1", 5))


def test_failing_job_is_error_with_log_tail(ctl: LocalJobController) -> None:
    record = ctl.submit(job("error-1", "failing.py"), wait=True)
    assert record.state == ERROR
    assert record.exit_code not in (None, 0)
    assert "boom: the input has no text column" in record.details
    tail = "\n".join(ctl.log_tail("error-1", 50))
    assert "ValueError: boom" in tail and "loading input" in tail


def test_cancel_kills_every_process_of_the_job(ctl: LocalJobController, home: Path) -> None:
    marker = home / "sleeper.pid"
    ctl.submit(job("cancel-1", "sleeper.py", [str(marker)], app="sentiment-serving"))
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert marker.exists(), "\n".join(ctl.log_tail("cancel-1", 30))
    driver_pid = int(marker.read_text())
    assert ctl.get("cancel-1").state == RUNNING
    assert [r.job_id for r in ctl.list_jobs("active", {"app": "sentiment-serving"})] == ["cancel-1"]
    record = ctl.cancel("cancel-1", timeout=15)
    assert record.state == CANCELLED
    assert record.details == "cancelled by user"
    with pytest.raises(ProcessLookupError):
        os.kill(driver_pid, 0)
    assert not session_members(record.pid)
    assert ctl.get("cancel-1").state == CANCELLED  # a later refresh keeps it
    assert ctl.cancel("cancel-1").state == CANCELLED  # idempotent


def test_a_repeated_submit_attaches_instead_of_starting_a_second_job(ctl: LocalJobController, home: Path) -> None:
    first = ctl.submit(job("error-1", "failing.py"), wait=True)
    assert first.state == ERROR
    again = ctl.submit(job("error-1", "failing.py"), wait=True)
    assert again.attached and again.state == ERROR and again.pid == first.pid  # no new process
    assert len(list((home / "run" / "jobs").glob("error-1*.json"))) == 1

    # Another process (a retried task) attaching to a running job waits for it, and cancels it when
    # its own wait times out or is interrupted, as the first waiter would have.
    marker = home / "attach.pid"
    ctl.submit(job("attach-1", "sleeper.py", [str(marker)]))
    other = LocalJobController(Settings(backend="local", home=home))
    with pytest.raises(JobError, match="did not finish within 2s; cancelled"):
        other.submit(job("attach-1", "sleeper.py", [str(marker)]), wait=True, timeout=2)
    assert ctl.get("attach-1").state == CANCELLED


def test_ids_are_validated(ctl: LocalJobController) -> None:
    with pytest.raises(JobError, match="invalid job id"):
        ctl.submit(job("bad id!", "failing.py"))
    generated = local_jobs.new_job_id({"labels": {"app": "sentiment-training"}})
    assert generated.startswith("sentiment-training-") and len(generated) <= 100


def test_list_filters(ctl: LocalJobController) -> None:
    ended_jobs(ctl)
    ids = [r.job_id for r in ctl.list_jobs()]
    assert sorted(ids) == ["cancel-1", "done-1", "error-1"]
    assert [r.job_id for r in ctl.list_jobs("ERROR")] == ["error-1"]
    assert "done-1" in [r.job_id for r in ctl.list_jobs("inactive")]
    assert [r.job_id for r in ctl.list_jobs(label_filter={"case": "done"})] == ["done-1"]
    with pytest.raises(ValueError, match="unknown state filter"):
        ctl.list_jobs("sleeping")
    with pytest.raises(local_jobs.JobNotFoundError, match="not found"):
        ctl.get("no-such-job")


def test_tail_lines_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert local_jobs.tail_lines(path, 3) == ["line 99997", "line 99998", "line 99999"]
    assert local_jobs.tail_lines(tmp_path / "missing.log") == []


def test_parse_filter() -> None:
    assert local_jobs_cli.parse_filter("labels.app=sentiment-serving") == ({"app": "sentiment-serving"}, None)
    assert local_jobs_cli.parse_filter("status.state = ACTIVE AND labels.app = sentiment-serving") == (
        {"app": "sentiment-serving"},
        "ACTIVE",
    )
    with pytest.raises(ValueError, match="unsupported filter"):
        local_jobs_cli.parse_filter("placement.clusterName=x")


def test_cli_list_describe_kill_submit(
    ctl: LocalJobController, cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ended_jobs(ctl)
    assert local_jobs_cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["JOB_ID", "TYPE", "STATUS", "SUBMITTED", "LABELS"]
    assert "done-1" in out and "DONE" in out and "error-1" in out and "ERROR" in out

    assert local_jobs_cli.main(["list", "--filter", "labels.case=error", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [j["reference"]["job_id"] for j in listed] == ["error-1"]

    assert local_jobs_cli.main(["describe", "done-1"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["status"]["state"] == DONE and described["labels"]["app"] == "test-app"

    assert local_jobs_cli.main(["describe", "no-such-job"]) == 1
    assert "not found" in capsys.readouterr().err

    # kill a running job through the CLI, as `gcloud dataproc jobs kill` would
    marker = tmp_path / "cli-sleeper.pid"
    spec = job("clikill-1", "sleeper.py", [str(marker)], app="sentiment-serving")
    (tmp_path / "job.json").write_text(json.dumps(spec))
    assert local_jobs_cli.main(["submit", str(tmp_path / "job.json")]) == 0
    assert "Job [clikill-1] submitted" in capsys.readouterr().out
    assert local_jobs_cli.main(["list", "--filter", "labels.app=sentiment-serving", "--state-filter", "active"]) == 0
    assert "clikill-1" in capsys.readouterr().out
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert local_jobs_cli.main(["kill", "clikill-1", "--timeout", "15"]) == 0
    assert "cancellation initiated for [clikill-1]. State: CANCELLED" in capsys.readouterr().out
    assert local_jobs_cli.main(["kill", "done-1"]) == 0
    assert "already DONE" in capsys.readouterr().out

    # submit --wait of a failing job: exit 1 with the driver log tail
    failing = job("clisubmit-1", "failing.py")
    (tmp_path / "failing.json").write_text(json.dumps(failing))
    assert local_jobs_cli.main(["submit", str(tmp_path / "failing.json"), "--wait"]) == 1
    err = capsys.readouterr().err
    assert "ended ERROR" in err and "ValueError: boom" in err
    assert local_jobs_cli.main(["log", "clisubmit-1", "-n", "5"]) == 0
    assert "driver exited with code" in capsys.readouterr().out
