"""The Dataproc job builder: every output is a valid `dataproc_v1.Job`, bad specs are rejected, and the
gcloud command submits exactly the same Job (checked by sending it to a fake Dataproc endpoint)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.cloud import dataproc_v1

from sentiment_mlops import jobs
from sentiment_mlops.core.naming import BACKEND_PROPERTY, SOURCE_TYPES
from sentiment_mlops.jobs import cli as jobs_cli

TARGET = jobs.DataprocTarget(
    project_id="sentiment-proj-1",
    region="us-central1",
    cluster_name="sentiment-cluster",
    code_uri="gs://acme-code/jobs",
)


def _training_args(**overrides: Any) -> list[str]:
    kw: dict[str, Any] = dict(
        input="gs://acme-raw/raw/train.csv",
        output="gs://acme-models/run-1",
        mlflow_uri="http://mlflow.example.internal:5000",
    )
    kw.update(overrides)
    return jobs.training_args(**kw)


def _serving_args(**overrides: Any) -> list[str]:
    kw: dict[str, Any] = dict(
        source_type="file",
        input_path="gs://acme-streaming-input/incoming",
        output_path="gs://acme-predictions/p",
        checkpoint="gs://acme-checkpoint/serving",
        mlflow_uri="http://mlflow.example.internal:5000",
        model_name="twitter-sentiment-model",
    )
    kw.update(overrides)
    return jobs.serving_args(**kw)


# ---------------------------------------------------------------------------------------------------
# Buckets and arguments


def test_bucket_names_derive_every_bucket_from_the_base_name() -> None:
    assert jobs.bucket_names("acme") == {
        "code": "acme-code",
        "raw": "acme-raw",
        "models": "acme-models",
        "predictions": "acme-predictions",
        "checkpoint": "acme-checkpoint",
        "streaming_input": "acme-streaming-input",
    }
    assert jobs.bucket_names("gs://acme/") == jobs.bucket_names("acme")
    assert jobs.default_code_uri("acme") == "gs://acme-code/jobs"


@pytest.mark.parametrize("bad", ["", "Acme", "a/b", "x" * 60])
def test_bucket_names_reject_unusable_base_names(bad: str) -> None:
    with pytest.raises(ValueError):
        jobs.bucket_names(bad)


def test_training_args_parse_with_the_training_jobs_own_parser() -> None:
    from sentiment_mlops.training import job as training_job

    args = _training_args(
        models="lr,svc", max_rows=5000, enable_cv=True, cv_folds=3, sample_fraction=0.5, extra=["--input-layout=six"]
    )
    ns = training_job.build_arg_parser().parse_args(args)
    training_job.validate_args(ns)
    assert (ns.input, ns.output, ns.mlflow_uri) == (
        "gs://acme-raw/raw/train.csv",
        "gs://acme-models/run-1",
        "http://mlflow.example.internal:5000",
    )
    assert (ns.models, ns.max_rows, ns.enable_cv, ns.cv_folds, ns.sample_fraction) == ("lr,svc", 5000, True, 3, 0.5)
    assert ns.enable_caching and ns.input_layout == "six"
    assert ns.mlflow_experiment == "sentiment-analysis-pipeline"
    assert ns.registered_model_name == "twitter-sentiment-model"
    assert all(a.startswith("--") for a in args)

    defaults = training_job.build_arg_parser().parse_args(_training_args(enable_caching=False))
    assert not defaults.enable_cv and not defaults.enable_caching and defaults.num_features == 32768


@pytest.mark.parametrize(
    ("given", "expected"),
    [([], False), (["{flag}"], True), (["{flag}", "true"], True), (["{flag}", "false"], False),
     (["{flag}=False"], False), (["{flag}=yes"], True), (["{flag}", "0"], False)],
)  # fmt: skip
def test_boolean_job_flags_take_true_or_false_as_the_original_scripts_pass_them(
    given: list[str], expected: bool
) -> None:
    """`--write-kafka true` (the original deploy script), `--enable-cv false`, or the bare flag."""
    from sentiment_mlops.serving import job as serving_job
    from sentiment_mlops.training import job as training_job

    serving = serving_job.build_arg_parser()
    for flag in ("--write-kafka", "--include-features", "--available-now"):
        argv = ["--output-path=o", "--checkpoint=c", *(g.format(flag=flag) for g in given), "--model-name", "m"]
        ns = serving.parse_args(argv)
        assert getattr(ns, flag[2:].replace("-", "_")) is expected and ns.model_name == "m"
    training = training_job.build_arg_parser()
    for flag in ("--enable-cv", "--enable-caching", "--force-promote"):
        ns = training.parse_args(["--input=i", "--output=o", *(g.format(flag=flag) for g in given), "--seed", "7"])
        assert getattr(ns, flag[2:].replace("-", "_")) is expected and ns.seed == 7


def test_boolean_job_flags_reject_other_values(capsys: pytest.CaptureFixture[str]) -> None:
    from sentiment_mlops.serving import job as serving_job

    with pytest.raises(SystemExit):
        serving_job.build_arg_parser().parse_args(["--output-path=o", "--checkpoint=c", "--write-kafka", "maybe"])
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_features": 0},
        {"sample_fraction": 0.0},
        {"sample_fraction": 1.5},
        {"cv_folds": 1},
        {"max_rows": -1},
        {"input": ""},
    ],
)
def test_training_args_reject_bad_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _training_args(**overrides)


def test_serving_args_write_given_settings_and_omit_unset_ones() -> None:
    args = _serving_args(max_files_per_trigger=2, quarantine_path="gs://acme-predictions/bad")
    assert "--source-type=file" in args and "--input-path=gs://acme-streaming-input/incoming" in args
    assert "--max-files-per-trigger=2" in args and "--quarantine-path=gs://acme-predictions/bad" in args
    assert "--model-stage=Production" in args and "--model-flavor=spark" in args
    assert not any(a.startswith(("--kafka", "--write-kafka", "--metrics-path")) for a in args)

    kafka = jobs.serving_args(
        source_type="kafka",
        kafka_bootstrap="k1:9092,k2:9092",
        kafka_topic="tweets",
        output_path="gs://acme-predictions/p",
        checkpoint="gs://acme-checkpoint/s",
        mlflow_uri="http://m:5000",
        model_name="m",
        write_kafka=True,
        kafka_output_topic="predictions",
    )
    assert "--write-kafka" in kafka and "--kafka-bootstrap=k1:9092,k2:9092" in kafka
    # Output brokers default to the input brokers.
    assert "--kafka-output-bootstrap=k1:9092,k2:9092" in kafka and "--kafka-output-topic=predictions" in kafka


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source_type": "socket"}, "source_type"),
        ({"input_path": None}, "input_path"),
        ({"source_type": "kafka", "kafka_topic": "t"}, "kafka_bootstrap"),
        ({"write_kafka": True}, "write_kafka"),
        ({"model_flavor": "onnx"}, "model_flavor"),
        ({"batch_interval_seconds": 0}, "batch_interval_seconds"),
        ({"max_offsets_per_trigger": 0}, "max_offsets_per_trigger"),
        ({"checkpoint": ""}, "checkpoint"),
    ],
)
def test_serving_args_reject_inconsistent_settings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _serving_args(**overrides)


def test_default_paths_and_names_match_the_airflow_dags() -> None:
    """The CI scripts take their defaults from the builder; the DAGs from orchestration.config and
    orchestration.tasks. Both must point at the same data, model and checkpoints."""
    from sentiment_mlops.orchestration import config as airflow_config
    from sentiment_mlops.orchestration.tasks.common import serving_paths
    from sentiment_mlops.orchestration.tasks.training import training_root

    default_input = airflow_config.AirflowConfig(gcs_bucket="acme").training_input_path
    assert jobs.training_paths("acme", "r1")["input"] == default_input
    for source in SOURCE_TYPES:
        dag_paths = serving_paths(airflow_config.AirflowConfig(gcs_bucket="acme", serving_source_type=source))
        ours = jobs.serving_paths("acme", source)
        assert ours == {key: dag_paths[key] for key in ours}
    assert jobs.training_paths("acme", "r1")["output"] == training_root(
        airflow_config.AirflowConfig(gcs_bucket="acme"), "r1"
    )


def test_serving_paths_are_the_buckets_the_original_gsutil_commands_use() -> None:
    """`gsutil cp x.csv gs://B-streaming-input/` and `gsutil ls gs://B-predictions/predictions/`."""
    from sentiment_mlops.orchestration import config as airflow_config
    from sentiment_mlops.orchestration.tasks.common import serving_paths

    paths = serving_paths(airflow_config.AirflowConfig(gcs_bucket="acme"))
    assert paths["input"] == "gs://acme-streaming-input"
    assert paths["output"] == "gs://acme-predictions"
    assert paths["predictions"] == "gs://acme-predictions/predictions"
    assert paths["metrics"] == "gs://acme-predictions/_metrics/batches"
    assert paths["monitoring"] == "gs://acme-predictions/monitoring"
    # nothing the jobs write lives in the input bucket, whose root every drop lands in
    assert not any(p.startswith("gs://acme-streaming-input") for k, p in paths.items() if k != "input")


def test_serving_paths_have_one_checkpoint_per_source_type() -> None:
    assert jobs.serving_paths("acme", "file")["checkpoint"] != jobs.serving_paths("acme", "kafka")["checkpoint"]
    with pytest.raises(ValueError, match="source_type"):
        jobs.serving_paths("acme", "socket")


# ---------------------------------------------------------------------------------------------------
# Jobs


def test_jobs_tell_spark_they_run_on_dataproc() -> None:
    # core.spark_session.job_settings reads this property to pick the backend's settings.
    assert jobs.TRAINING_PROPERTIES[BACKEND_PROPERTY] == "dataproc"
    assert jobs.STREAMING_PROPERTIES[BACKEND_PROPERTY] == "dataproc"


def test_training_job_is_a_valid_dataproc_job_with_the_expected_fields() -> None:
    args = _training_args()
    job = jobs.training_job(
        TARGET, args, labels={"team": "ml"}, job_id="train-001", properties={"spark.executor.memory": "8g"}
    )
    proto = dataproc_v1.Job(**job)
    assert proto.reference.job_id == "train-001" and proto.reference.project_id == "sentiment-proj-1"
    assert proto.placement.cluster_name == "sentiment-cluster"
    assert proto.pyspark_job.main_python_file_uri == "gs://acme-code/jobs/sentiment_multimodel.py"
    assert list(proto.pyspark_job.python_file_uris) == ["gs://acme-code/jobs/sentiment_mlops.zip"]
    assert list(proto.pyspark_job.args) == args
    props = dict(proto.pyspark_job.properties)
    assert props["spark.sentiment.backend"] == "dataproc"
    assert props["spark.executor.memory"] == "8g"  # caller's value wins over the default
    assert props["spark.serializer"] == jobs.TRAINING_PROPERTIES["spark.serializer"]
    assert dict(proto.labels) == {"app": "sentiment-training", "team": "ml"}
    assert "spark.jars.packages" not in props
    assert jobs.validate_job(job) == proto


def test_training_job_without_job_id_lets_dataproc_choose_one() -> None:
    job = jobs.training_job(TARGET, _training_args())
    assert job["reference"] == {"project_id": "sentiment-proj-1"}
    assert dataproc_v1.Job(**job).reference.job_id == ""


def test_serving_job_has_streaming_properties_labels_and_kafka_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(jobs.KAFKA_PACKAGE_ENV, raising=False)
    args = _serving_args()
    job = jobs.serving_job(TARGET, args, kafka=True, labels={"app": "other", "env": "prod"}, job_id="serve-1")
    proto = dataproc_v1.Job(**job)
    assert (
        proto.pyspark_job.main_python_file_uri == "gs://acme-code/jobs/streaming_serving_mlflow_hdfs_kafka_optimize.py"
    )
    assert list(proto.pyspark_job.python_file_uris) == ["gs://acme-code/jobs/sentiment_mlops.zip"]
    assert list(proto.pyspark_job.args) == args
    props = dict(proto.pyspark_job.properties)
    assert props["spark.jars.packages"] == jobs.KAFKA_PACKAGE_DEFAULT
    assert props["spark.streaming.stopGracefullyOnShutdown"] == "true"
    assert props["spark.dynamicAllocation.enabled"] == "false"
    assert props["spark.sentiment.backend"] == "dataproc"
    # The app label identifies serving jobs for the deploy script, so a caller cannot change it.
    assert dict(proto.labels) == {"app": "sentiment-serving", "env": "prod"}

    plain = jobs.serving_job(TARGET, args)
    assert "spark.jars.packages" not in plain["pyspark_job"]["properties"]
    assert "scheduling" not in plain


def test_kafka_package_env_override_and_merge_with_callers_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jobs.KAFKA_PACKAGE_ENV, "org.apache.spark:spark-sql-kafka-0-10_2.13:4.1.0")
    job = jobs.serving_job(TARGET, _serving_args(), kafka=True, properties={"spark.jars.packages": "a:b:1"})
    assert (
        job["pyspark_job"]["properties"]["spark.jars.packages"]
        == "a:b:1,org.apache.spark:spark-sql-kafka-0-10_2.13:4.1.0"
    )


def test_serving_job_can_be_restartable() -> None:
    job = jobs.serving_job(TARGET, _serving_args(), max_failures_per_hour=3)
    assert dataproc_v1.Job(**job).scheduling.max_failures_per_hour == 3
    with pytest.raises(ValueError, match="max_failures_per_hour"):
        jobs.serving_job(TARGET, _serving_args(), max_failures_per_hour=11)


def test_builders_refuse_bad_targets_and_labels() -> None:
    with pytest.raises(ValueError, match="cluster_name"):
        jobs.training_job(
            jobs.DataprocTarget("sentiment-proj-1", "us-central1", "", "gs://acme-code/jobs"), _training_args()
        )
    with pytest.raises(ValueError, match="main_python_file_uri"):
        jobs.training_job(jobs.DataprocTarget("sentiment-proj-1", "us-central1", "c1", "/local/jobs"), _training_args())
    with pytest.raises(ValueError, match="label key"):
        jobs.training_job(TARGET, _training_args(), labels={"Team": "ml"})
    with pytest.raises(ValueError, match="list of strings"):
        jobs.training_job(TARGET, "--input=x")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------
# validate_job


def _valid_job() -> dict[str, Any]:
    return jobs.training_job(TARGET, _training_args(), job_id="train-001")


def _with(path: str, value: Any) -> dict[str, Any]:
    job = json.loads(json.dumps(_valid_job()))
    *parents, leaf = path.split(".")
    node = job
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(leaf)
    else:
        node[leaf] = value
    return job


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("placement.cluster_name", _DELETE, "placement.cluster_name is required"),
        ("placement.cluster_name", "Bad_Cluster", "placement.cluster_name"),
        ("pyspark_job.main_python_file_uri", _DELETE, "main_python_file_uri is required"),
        ("pyspark_job.main_python_file_uri", "/home/me/job.py", "gs://BUCKET/PATH.py"),
        ("pyspark_job.main_python_file_uri", "gs://acme-code/jobs/job.sh", "gs://BUCKET/PATH.py"),
        ("pyspark_job.python_file_uris", ["file:///tmp/pkg.zip"], "python_file_uris"),
        ("pyspark_job.args", "--input=x", "args must be a list of strings"),
        ("pyspark_job.jar_file_uris", ["s3://x/y.jar"], "jar_file_uris"),
        ("labels", {"Team": "ml"}, "label key 'Team'"),
        ("labels", {"1team": "ml"}, "label key '1team'"),
        ("labels", {"team": "ML"}, "label value 'ML'"),
        ("labels", {"team": "x" * 64}, "label value"),
        ("labels", {"k" + "x" * 63: "v"}, "label key"),
        ("labels", {f"l{i}": "v" for i in range(33)}, "at most 32 labels"),
        ("reference.job_id", "train job 1", "reference.job_id"),
        ("reference.job_id", "x" * 101, "reference.job_id"),
        ("reference.project_id", "P", "project_id"),
        ("scheduling.max_failures_total", 241, "max_failures_total"),
        ("pyspark_job.main_python_fle_uri", "gs://a/b.py", "Unknown field"),
        ("pyspark_job.properties", {"spark.x": 1}, "not a valid dataproc_v1.Job"),
        ("hadoop_job", {"main_jar_file_uri": "gs://acme-code/x.jar"}, "pyspark_job"),
    ],
)
def test_validate_job_rejects_bad_specs(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        jobs.validate_job(_with(path, value))


def test_validate_job_lists_every_problem_at_once() -> None:
    job = _with("placement.cluster_name", _DELETE)
    job["labels"] = {"Bad": "x"}
    with pytest.raises(ValueError) as info:
        jobs.validate_job(job)
    assert "cluster_name" in str(info.value) and "label key 'Bad'" in str(info.value)


def test_validate_job_rejects_non_dicts_and_accepts_unicode_free_edge_cases() -> None:
    with pytest.raises(ValueError, match="must be a dict"):
        jobs.validate_job(["not", "a", "job"])  # type: ignore[arg-type]
    edge = _with("labels", {"k": "", "a" * 63: "b" * 63})
    edge["reference"]["job_id"] = "A_b-9" * 20
    jobs.validate_job(edge)


# ---------------------------------------------------------------------------------------------------
# gcloud


def test_gcloud_command_shape() -> None:
    job = jobs.serving_job(
        TARGET, _serving_args(), kafka=True, job_id="serve-1", properties={"spark.jars.packages": "a:b:1"}
    )
    cmd = jobs.job_to_gcloud_command(job, "us-central1", async_=True)
    assert cmd[:6] == ["gcloud", "dataproc", "jobs", "submit", "pyspark", job["pyspark_job"]["main_python_file_uri"]]
    assert "--cluster=sentiment-cluster" in cmd and "--region=us-central1" in cmd
    assert "--project=sentiment-proj-1" in cmd and "--id=serve-1" in cmd and "--async" in cmd
    assert "--py-files=gs://acme-code/jobs/sentiment_mlops.zip" in cmd
    # Two packages contain a comma: gcloud's alternate delimiter keeps them in one property.
    props = next(c for c in cmd if c.startswith("--properties="))
    assert props.startswith("--properties=^#^") and f"spark.jars.packages=a:b:1,{jobs.kafka_package()}" in props
    sep = cmd.index("--")
    assert cmd[sep + 1 :] == job["pyspark_job"]["args"]


def test_gcloud_command_refuses_what_it_cannot_express() -> None:
    job = _valid_job()
    with pytest.raises(ValueError, match="differs"):
        jobs.job_to_gcloud_command(job, "us-central1", project_id="other-project-1")
    with pytest.raises(ValueError, match="region"):
        jobs.job_to_gcloud_command(job, "")
    job["pyspark_job"]["logging_config"] = {"driver_log_levels": {"root": "INFO"}}
    with pytest.raises(ValueError, match="no gcloud flag"):
        jobs.job_to_gcloud_command(job, "us-central1")


def _rest_json(job: dataproc_v1.Job) -> str:
    """A Job as the REST API writes it: camelCase, enum names, no default values."""
    return dataproc_v1.Job.to_json(job, use_integers_for_enums=False, always_print_fields_with_no_presence=False)


class FakeDataproc:
    """A Dataproc REST endpoint on localhost that records submitted jobs, for running real gcloud."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - clusters.get, which gcloud calls before submitting
                name = self.path.split("?")[0].rsplit("/", 1)[-1]
                self._reply({"clusterName": name, "config": {"configBucket": "fake-staging"}})

            def do_POST(self) -> None:  # noqa: N802 - jobs:submit
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    job = fake.submit(body)
                except ValueError as exc:  # what Dataproc answers to a malformed request
                    self.send_error(400, str(exc))
                    return
                self._reply(json.loads(_rest_json(job)))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.project_region: tuple[str, str] | None = None
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def submit(self, body: bytes) -> dataproc_v1.Job:
        """A jobs:submit REST body, read strictly as a `SubmitJobRequest.job` (an unknown or mistyped
        field raises ValueError, as Dataproc refuses it); returns the `dataproc_v1.Job` Dataproc would
        hold, PENDING."""
        request = json.loads(body)
        if set(request) - {"job", "requestId"}:
            raise ValueError(f"unknown request fields {sorted(set(request) - {'job', 'requestId'})}")
        try:
            job = dataproc_v1.Job.from_json(json.dumps(request["job"]))  # unknown fields raise here
        except Exception as exc:
            raise ValueError(f"not a dataproc_v1.Job: {exc}") from exc
        if not job.placement.cluster_name or not job.pyspark_job.main_python_file_uri:
            raise ValueError("a PySpark job needs placement.cluster_name and pyspark_job.main_python_file_uri")
        job.status = dataproc_v1.JobStatus(state=dataproc_v1.JobStatus.State.PENDING)
        self.jobs.append(request["job"])
        return job

    def __enter__(self) -> FakeDataproc:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def run_gcloud(self, argv: list[str], tmp: Path) -> dict[str, Any]:
        """Run `argv` (a gcloud submit command) against this endpoint; return the Job it sent."""
        assert argv[0] == "gcloud"
        token = tmp / "token"
        token.write_text("fake-token")
        env = {
            **os.environ,
            "CLOUDSDK_CONFIG": str(tmp / "gcloud-config"),  # never the user's gcloud config
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_DATAPROC": self.url,
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
            "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        }
        before = len(self.jobs)
        proc = subprocess.run(
            [argv[0], f"--access-token-file={token}", *argv[1:]],  # gcloud-wide flags go anywhere before --
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert len(self.jobs) == before + 1, proc.stderr
        return self.jobs[-1]


needs_gcloud = pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud CLI not installed")


@pytest.fixture(scope="module")
def fake_dataproc() -> Iterator[FakeDataproc]:
    with FakeDataproc() as fake:
        yield fake


def assert_same_job(sent: dict[str, Any], job: dict[str, Any]) -> None:
    """gcloud's REST body (camelCase JSON) and the builder's dict are the same dataproc_v1.Job."""
    assert dataproc_v1.Job.from_json(json.dumps(sent)) == dataproc_v1.Job(**job)


def _gcloud_list_value(text: str) -> list[str]:
    """gcloud's list syntax (`gcloud topic escaping`): comma-separated, or `^D^` then D-separated."""
    if text.startswith("^") and text.index("^", 1) == 2:
        return text[3:].split(text[1])
    return text.split(",")


def _gcloud_dict_value(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in _gcloud_list_value(text))


def gcloud_submit_pyspark_parser() -> argparse.ArgumentParser:
    """The flags of `gcloud dataproc jobs submit pyspark` that job_to_gcloud_command may write; an
    unknown flag is an error, as it is for gcloud."""
    p = argparse.ArgumentParser(prog="gcloud dataproc jobs submit pyspark", exit_on_error=False)
    p.add_argument("py_file")
    p.add_argument("--cluster", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--project")
    p.add_argument("--id")
    for flag in ("--py-files", "--jars", "--files", "--archives"):
        p.add_argument(flag, type=_gcloud_list_value)
    p.add_argument("--properties", type=_gcloud_dict_value)
    p.add_argument("--labels", type=_gcloud_dict_value)
    p.add_argument("--max-failures-per-hour", type=int)
    p.add_argument("--max-failures-total", type=int)
    p.add_argument("--async", action="store_true")
    return p


def job_from_gcloud_command(argv: list[str]) -> tuple[dict[str, Any], str]:
    """What gcloud would submit for `argv`: (the Job as a dict, the region)."""
    assert argv[:5] == ["gcloud", "dataproc", "jobs", "submit", "pyspark"]
    words = argv[5:]
    job_args: list[str] = []
    if "--" in words:
        words, job_args = words[: words.index("--")], words[words.index("--") + 1 :]
    ns = gcloud_submit_pyspark_parser().parse_args(words)
    job: dict[str, Any] = {
        "reference": {k: v for k, v in {"project_id": ns.project, "job_id": ns.id}.items() if v},
        "placement": {"cluster_name": ns.cluster},
        "pyspark_job": {"main_python_file_uri": ns.py_file, "args": job_args},
    }
    for flag, field in (("py_files", "python_file_uris"), ("jars", "jar_file_uris"), ("files", "file_uris")):
        if getattr(ns, flag):
            job["pyspark_job"][field] = getattr(ns, flag)
    if ns.archives:
        job["pyspark_job"]["archive_uris"] = ns.archives
    if ns.properties:
        job["pyspark_job"]["properties"] = ns.properties
    if ns.labels:
        job["labels"] = ns.labels
    scheduling = {"max_failures_per_hour": ns.max_failures_per_hour, "max_failures_total": ns.max_failures_total}
    if any(scheduling.values()):
        job["scheduling"] = {k: v for k, v in scheduling.items() if v}
    return job, ns.region


def _jobs_for_gcloud() -> list[dict[str, Any]]:
    training = jobs.training_job(
        TARGET, _training_args(extra=["--note=a b, c", "--", "x=y"]), labels={"team": "ml"}, job_id="train-001"
    )
    serving = jobs.serving_job(
        TARGET,
        _serving_args(max_files_per_trigger=3),
        kafka=True,
        job_id="serve-001",
        properties={"spark.jars.packages": "a:b:1"},
        max_failures_per_hour=2,
    )
    return [training, serving, jobs.training_job(TARGET, _training_args())]


@pytest.mark.parametrize("index", range(3))
def test_gcloud_command_submits_the_builders_job_without_gcloud(index: int) -> None:
    """The same equivalence as with real gcloud below, read with a parser of gcloud's flags, so it
    runs everywhere (also where gcloud is not installed, as in CI)."""
    job = _jobs_for_gcloud()[index]
    for async_ in (False, True):
        parsed, region = job_from_gcloud_command(jobs.job_to_gcloud_command(job, TARGET.region, async_=async_))
        assert region == "us-central1"
        assert dataproc_v1.Job(**parsed) == dataproc_v1.Job(**job)
        with FakeDataproc() as fake:  # what an endpoint makes of it
            submitted = fake.submit(json.dumps({"job": json.loads(_rest_json(dataproc_v1.Job(**parsed)))}).encode())
        assert isinstance(submitted, dataproc_v1.Job)
        assert submitted.status.state == dataproc_v1.JobStatus.State.PENDING
        assert submitted.pyspark_job == dataproc_v1.Job(**job).pyspark_job


def test_gcloud_list_syntax_round_trips_items_with_commas() -> None:
    items = ["spark.jars.packages=a:b:1,c:d:2", "spark.x=1"]
    from sentiment_mlops.jobs.gcloud import _gcloud_list

    assert _gcloud_list_value(_gcloud_list(items)) == items
    assert _gcloud_list_value(_gcloud_list(["a", "b"])) == ["a", "b"]
    assert _gcloud_list(["a", "b"]) == "a,b"
    assert _gcloud_list(["a,#", "b"]) == "^|^a,#|b"
    assert _gcloud_list(["^a", "b"]) == "^#^^a#b"
    with pytest.raises(ValueError, match="delimiter"):
        _gcloud_list(["a,#|@~;%!+*"])


def test_fake_dataproc_refuses_what_dataproc_refuses() -> None:
    good = json.loads(_rest_json(dataproc_v1.Job(**_valid_job())))
    with FakeDataproc() as fake:
        assert fake.submit(json.dumps({"job": good}).encode()).reference.job_id == "train-001"
        with pytest.raises(ValueError, match="dataproc_v1.Job"):
            fake.submit(json.dumps({"job": {**good, "pysparkJobb": {}}}).encode())
        with pytest.raises(ValueError, match="dataproc_v1.Job"):
            fake.submit(json.dumps({"job": {**good, "labels": ["not", "a", "map"]}}).encode())
        with pytest.raises(ValueError, match="cluster_name"):
            fake.submit(json.dumps({"job": {k: v for k, v in good.items() if k != "placement"}}).encode())
        with pytest.raises(ValueError, match="unknown request fields"):
            fake.submit(json.dumps({"job": good, "jobb": {}}).encode())
        assert len(fake.jobs) == 1


@needs_gcloud
def test_gcloud_submits_exactly_the_builders_job(fake_dataproc: FakeDataproc, tmp_path: Path) -> None:
    training = jobs.training_job(
        TARGET, _training_args(extra=["--note=a b, c"]), labels={"team": "ml"}, job_id="train-001"
    )
    serving = jobs.serving_job(
        TARGET,
        _serving_args(),
        kafka=True,
        job_id="serve-001",
        properties={"spark.jars.packages": "a:b:1"},
        max_failures_per_hour=2,
    )
    for job in (training, serving):
        # --async only stops gcloud from polling the job (the fake never finishes one); the Job it
        # sends is the same either way.
        cmd = jobs.job_to_gcloud_command(job, TARGET.region, async_=True)
        sent = fake_dataproc.run_gcloud(cmd, tmp_path)
        assert_same_job(sent, job)
        # ...and the comparison is strict: one changed argument makes it fail.
        changed = json.loads(json.dumps(job))
        changed["pyspark_job"]["args"][-1] += "x"
        assert dataproc_v1.Job.from_json(json.dumps(sent)) != dataproc_v1.Job(**changed)


# ---------------------------------------------------------------------------------------------------
# CLI


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentiment_mlops.jobs.cli", *argv], capture_output=True, text=True, timeout=60
    )


def test_cli_job_json_and_gcloud_command_match_the_builder() -> None:
    common = [
        "--project-id",
        "sentiment-proj-1",
        "--region",
        "us-central1",
        "--cluster",
        "sentiment-cluster",
        "--gcs-bucket",
        "acme",
    ]
    job_opts = [
        "--kind",
        "training",
        *common,
        "--job-id",
        "train-001",
        "--label",
        "team=ml",
        "--input",
        "gs://acme-raw/raw/train.csv",
        "--output",
        "gs://acme-models/run-1",
        "--mlflow-uri",
        "http://mlflow.example.internal:5000",
        "--max-rows",
        "10",
        "--no-enable-caching",
    ]
    out = _cli("job-json", *job_opts, "--", "--input-layout=six")
    assert out.returncode == 0, out.stderr
    expected = jobs.training_job(
        TARGET,
        _training_args(max_rows=10, enable_caching=False, extra=["--input-layout=six"]),
        labels={"team": "ml"},
        job_id="train-001",
    )
    assert json.loads(out.stdout) == expected

    out = _cli("gcloud-command", "--print0", *job_opts, "--", "--input-layout=six")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\0")[:-1] == jobs.job_to_gcloud_command(expected, "us-central1")

    wrong = _cli("job-json", "--kind", "training", *common, "--source-type", "file")
    assert wrong.returncode == 2 and "--source-type" in wrong.stderr and "training" in wrong.stderr
    missing = _cli("job-json", "--kind", "serving", *common, "--source-type", "file")
    assert missing.returncode == 2 and "--output-path" in missing.stderr


def test_cli_options_cover_every_scalar_builder_keyword() -> None:
    parser = jobs_cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["job-json"]  # type: ignore[union-attr]
    dests = {a.dest for a in sub._actions}
    for func in (jobs.training_args, jobs.serving_args):
        assert set(jobs_cli._function_options(func)) <= dests


# ---------------------------------------------------------------------------------------------------
# Package zip (python_file_uris)


def test_package_zip_is_complete_clean_and_reproducible(tmp_path: Path) -> None:
    import zipfile

    from sentiment_mlops.jobs import packaging as package_zip

    first = package_zip.build_package_zip(tmp_path / "a" / jobs.PACKAGE_ZIP)
    second = package_zip.build_package_zip(tmp_path / "b" / jobs.PACKAGE_ZIP)
    assert first.read_bytes() == second.read_bytes()  # same sources, same bytes
    names = zipfile.ZipFile(first).namelist()
    assert "sentiment_mlops/__init__.py" in names and "sentiment_mlops/training/job.py" in names
    assert "sentiment_mlops/dataproc_jobs.py" in names and "sentiment_mlops/jobs/cli.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert all(n.startswith("sentiment_mlops/") for n in names)
    assert not list(first.parent.glob(".*"))  # no temporary file left behind


def test_package_zip_alone_provides_the_package_to_a_fresh_python(tmp_path: Path) -> None:
    """What Dataproc does with python_file_uris: the zip on sys.path, the source tree not."""
    out = subprocess.run(
        [sys.executable, "-m", "sentiment_mlops.jobs.packaging", str(tmp_path / jobs.PACKAGE_ZIP)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    zip_path = Path(out.stdout.strip())
    assert zip_path == tmp_path / jobs.PACKAGE_ZIP
    code_dir = str(Path(jobs.__file__).resolve().parents[2])
    probe = (
        "import sys\n"
        f"sys.path[:] = [p for p in sys.path if p.rstrip('/') != {code_dir!r}]\n"  # drop the editable install
        f"sys.path.insert(0, {str(zip_path)!r})\n"
        "import sentiment_mlops.training.job as t\n"
        "print(t.__file__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{zip_path}/sentiment_mlops/training/job.py"


@pytest.mark.parametrize(
    ("image", "package"),
    [
        ("2.2", "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3"),
        ("2.2-debian12", "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3"),
        ("2.3.5-ubuntu22", "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.3"),
        ("3.0", "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1"),
    ],
)
def test_serving_job_for_a_dataproc_image_gets_the_connector_of_its_spark(
    monkeypatch: pytest.MonkeyPatch, image: str, package: str
) -> None:
    """Image 2.2/2.3 run Spark 3.5 (Scala 2.12), where the job reads Kafka only through the native connector;
    3.0 runs Spark 4.0 (Scala 2.13). SPARK_KAFKA_PACKAGE, when set, still wins."""
    monkeypatch.delenv(jobs.KAFKA_PACKAGE_ENV, raising=False)
    monkeypatch.setenv(jobs.IMAGE_VERSION_ENV, image)
    job = jobs.serving_job(TARGET, _serving_args(), kafka=True)
    assert dict(jobs.validate_job(job).pyspark_job.properties)["spark.jars.packages"] == package
    monkeypatch.setenv(jobs.KAFKA_PACKAGE_ENV, "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.6")
    props = jobs.serving_job(TARGET, _serving_args(), kafka=True)["pyspark_job"]["properties"]
    assert props["spark.jars.packages"] == "org.apache.spark:spark-sql-kafka-0-10_2.12:3.5.6"


def test_an_unknown_dataproc_image_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(jobs.KAFKA_PACKAGE_ENV, raising=False)
    monkeypatch.setenv(jobs.IMAGE_VERSION_ENV, "1.5-debian10")
    with pytest.raises(
        ValueError, match=r"unknown Dataproc image or runtime version '1.5-debian10'; known: 2.2, 2.3, 3.0"
    ):
        jobs.serving_job(TARGET, _serving_args(), kafka=True)
