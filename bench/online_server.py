"""Benchmark (not a test): the Spark-free online server against `mlflow models serve` on the same
registered model, measured in one run with the same bounded local load.

    .venv/bin/python bench/online_server.py                     # bootstrap a model, measure both
    .venv/bin/python bench/online_server.py --model-uri models:/NAME@production \\
        --tracking-uri http://127.0.0.1:5000                    # an existing registered model

Without --model-uri it starts a throwaway MLflow server, trains LogisticRegression on 3,000 tweets
of the shared Sentiment140 sample with the real training functions, registers it, and stops Spark
before measuring. Each server then gets the same fixed number of requests from a few threads
(httpx, loopback only): single-text requests and batched requests, after a warm-up. The servers
run one after the other, never together. Prints a table and writes bench/results/online_server.json.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = Path(
    os.environ.get("SENTIMENT140_SAMPLE", ROOT.parent / "shared" / "data" / "sentiment140" / "train_100k.csv")
)
RESULTS = ROOT / "bench" / "results" / "online_server.json"
BENCH_MODEL_NAME = "bench-online-server"
JSON_HEADERS = {"content-type": "application/json"}
SENTIMENTS = ("negative", "positive")  # label 0 / 1


def load_texts(path: Path, n: int = 2000) -> list[str]:
    """Real tweets spread over the whole (label-sorted) file."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [row[1] for row in csv.reader(fh) if len(row) == 2]
    step = max(1, len(rows) // n)
    return rows[::step][:n]


def split_body(texts: list[str]) -> bytes:
    # The MLflow scoring format both servers accept.
    return json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}}).encode()


# --------------------------------------------------------------------------------------------
# Processes.


class Service:
    """A server subprocess in its own process group, so its children stop with it."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path, url: str) -> None:
        self.name, self.url, self.log_path = name, url, log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, path: str, timeout: float = 300.0) -> float:
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + path, timeout=5).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def bootstrap_model(workdir: Path, rows: int) -> tuple[Any, str, str]:
    """Throwaway MLflow server + LR trained on `rows` tweets, registered with alias production."""
    os.environ.setdefault("SPARK_MASTER", "local[2]")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import mlflow
    import mlflow.spark

    from sentiment_mlops.backends.local.mlflow_server import MlflowServer, free_port
    from sentiment_mlops.core.spark_session import get_spark
    from sentiment_mlops.training import data_loading, fitting, tracking

    server = MlflowServer(data_dir=workdir / "mlflow", port=free_port()).start()
    spark = get_spark("bench-online-server", extra={"spark.sql.shuffle.partitions": "4"})
    try:
        labelled, _ = data_loading.load_labelled(spark, str(SAMPLE_CSV))
        sample = data_loading.subsample(labelled, 1.0, rows, 42)
        train, val, test = data_loading.split_dataset(sample, 0.8, 0.1, 42)
        (result,) = fitting.train_models(spark, train, val, test, ["logisticregression"], 32768)
        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("bench-online-server")
        with mlflow.start_run(run_name="bench-model") as run:
            mlflow.spark.log_model(
                result.model,
                "model",
                signature=tracking.model_signature(),
                pip_requirements=tracking.MODEL_PIP_REQUIREMENTS,
            )
        mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", BENCH_MODEL_NAME, await_registration_for=120)
        mlflow.MlflowClient(server.url).set_registered_model_alias(BENCH_MODEL_NAME, "production", mv.version)
    finally:
        spark.stop()  # free the CPU and memory before measuring
    return server, server.url, f"models:/{BENCH_MODEL_NAME}@production"


# --------------------------------------------------------------------------------------------
# Load.


def run_load(url: str, bodies: list[bytes], total: int, concurrency: int) -> dict[str, Any]:
    """`total` POSTs spread over `concurrency` threads, one keep-alive client each."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()

    def worker() -> None:
        with httpx.Client(timeout=300.0) as client:
            while (i := next(counter)) < total:
                t0 = time.perf_counter()
                try:
                    resp = client.post(url, content=bodies[i % len(bodies)], headers=JSON_HEADERS)
                    ok, why = resp.status_code == 200, f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    ok, why = False, type(exc).__name__
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        failures.append(why)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": total,
        "errors": len(failures),
        "error_kinds": sorted(set(failures)),
        "wall_seconds": round(wall, 3),
        "requests_per_second": round(total / wall, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p90_ms": round(cuts[89] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


def measure(
    name: str,
    url: str,
    texts: list[str],
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> dict[str, Any]:
    singles = [split_body([t]) for t in texts]
    size = args.batch_size
    batches = [split_body(texts[i : i + size]) for i in range(0, max(1, len(texts) - size + 1), size)]
    # Warm-up: first requests pay for lazy initialisation (a SparkSession in mlflow's server).
    run_load(url, singles, args.warmup, min(2, args.concurrency))
    run_load(url, batches, max(2, args.warmup // 10), min(2, args.concurrency))
    log(f"{name}: measuring {args.requests} single-text requests")
    single = run_load(url, singles, args.requests, args.concurrency)
    log(f"{name}: measuring {args.batch_requests} requests of {args.batch_size} texts")
    batched = run_load(url, batches, args.batch_requests, args.concurrency)
    batched["texts_per_second"] = round(batched["requests_per_second"] * args.batch_size, 1)
    return {"single": single, f"batch_{args.batch_size}": batched}


def labels_from(resp: httpx.Response) -> list[int]:
    preds = resp.json()["predictions"]
    # Ours: ["positive", ..]; mlflow's Spark pyfunc: the prediction column as numbers (or records).
    out = []
    for p in preds:
        value = p.get("label", p.get("prediction")) if isinstance(p, dict) else p
        out.append(SENTIMENTS.index(value) if value in SENTIMENTS else int(float(value)))
    return out


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--model-uri", help="registered model (models:/NAME@alias); default: bootstrap one")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    p.add_argument("--train-rows", type=int, default=3000, help="rows for the bootstrap model")
    p.add_argument("--requests", type=int, default=1000, help="single-text requests per server")
    p.add_argument("--batch-requests", type=int, default=200, help="batched requests per server")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4, help="client threads")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--skip-mlflow-serve", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.model_uri and not args.tracking_uri:
        p.error("--model-uri needs --tracking-uri (or MLFLOW_TRACKING_URI)")
    return args


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Run:
    """What the servers' measurements collect, filled in scenario by scenario."""

    args: argparse.Namespace
    texts: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    model_uri: str = ""
    probe: bytes = b""
    services: list[Service] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    startup: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)
    load_before: tuple[float, ...] = ()


def measure_service(run: Run, service: Service, ready_path: str) -> list[int]:
    """Wait for `service`, measure it, and return its labels for the probe batch; stops it after."""
    run.services.append(service)
    run.startup[service.name] = round(service.wait_ready(ready_path), 2)
    progress(f"{service.name} ready in {run.startup[service.name]}s")
    run.results[service.name] = measure(service.name, service.url + "/invocations", run.texts, run.args, progress)
    labels = labels_from(httpx.post(service.url + "/invocations", content=run.probe, headers=JSON_HEADERS))
    service.stop()
    return labels


def online_server_scenario(run: Run) -> list[int]:
    """This project's Spark-free online server."""
    from sentiment_mlops.backends.local.mlflow_server import free_port

    port = free_port()
    env = {"MODEL_URI": run.model_uri, "PORT": str(port), "LOG_LEVEL": "WARNING",
           "MAX_BATCH": str(max(1000, run.args.batch_size))}  # fmt: skip
    ours = Service(
        "online_server",
        [sys.executable, "-m", "sentiment_mlops.online.server"],
        {**run.env, **env},
        run.workdir / "online_server.log",
        f"http://127.0.0.1:{port}",
    )
    return measure_service(run, ours, "/health")


def mlflow_serve_scenario(run: Run) -> list[int]:
    """`mlflow models serve` on the same model (its Spark pyfunc)."""
    from sentiment_mlops.backends.local.mlflow_server import free_port

    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    theirs = Service(
        "mlflow_models_serve",
        [str(mlflow_bin), "models", "serve", "-m", run.model_uri, "--env-manager", "local"]
        + ["-p", str(port), "-h", "127.0.0.1"],
        # It execs `uvicorn` from PATH: put this interpreter's bin folder first.
        {**run.env, "SPARK_LOCAL_IP": "127.0.0.1", "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ['PATH']}"},
        run.workdir / "mlflow_models_serve.log",
        f"http://127.0.0.1:{port}",
    )
    return measure_service(run, theirs, "/ping")


def run_servers(run: Run) -> None:
    """Bootstrap a model unless one was given, then measure each server in turn; stops everything."""
    mlflow_server = None
    try:
        if run.args.model_uri:
            tracking_uri, run.model_uri = run.args.tracking_uri, run.args.model_uri
        else:
            progress(f"bootstrapping: MLflow server + LogisticRegression on {run.args.train_rows} tweets")
            mlflow_server, tracking_uri, run.model_uri = bootstrap_model(run.workdir, run.args.train_rows)
        run.env = {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        run.probe = split_body(run.texts[: run.args.batch_size])
        run.load_before = os.getloadavg()  # after the bootstrap's Spark work
        ours_labels = online_server_scenario(run)
        if not run.args.skip_mlflow_serve:
            theirs_labels = mlflow_serve_scenario(run)
            run.agreement = {
                "texts": len(ours_labels),
                "same_label": sum(a == b for a, b in zip(ours_labels, theirs_labels, strict=True)),
            }
    finally:
        for service in run.services:
            service.stop()
        if mlflow_server is not None:
            mlflow_server.stop()


def report_record(run: Run) -> dict[str, Any]:
    """What bench/results/online_server.json holds."""
    args = run.args
    return {
        "benchmark": "online_server vs mlflow models serve",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_uri": run.model_uri,
        "settings": {
            "requests": args.requests,
            "batch_requests": args.batch_requests,
            "batch_size": args.batch_size,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "body": "MLflow dataframe_split JSON, real tweets, POST /invocations over loopback",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in run.load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "note": "shared machine: other engineers' Spark jobs may run during the measurement",
        },
        "server_startup_seconds": run.startup,
        "results": run.results,
        "label_agreement_on_probe_batch": run.agreement,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_options(argv)
    run = Run(args=args, texts=load_texts(SAMPLE_CSV), workdir=Path(tempfile.mkdtemp(prefix="bench-online-")))
    run_servers(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report_record(run), indent=2) + "\n")
    print_table(run.results)
    if run.agreement:
        print(f"\nlabels agree on {run.agreement['same_label']}/{run.agreement['texts']} probe texts")
    print(f"written to {args.out}")
    return 0


def print_table(results: dict[str, Any]) -> None:
    header = (
        f"{'server':<22}{'scenario':<12}{'req':>6}{'err':>5}{'req/s':>10}{'texts/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
    )
    print(header)
    print("-" * len(header))
    for server, scenarios in results.items():
        for scenario, r in scenarios.items():
            texts_per_s = r.get("texts_per_second", r["requests_per_second"])
            print(
                f"{server:<22}{scenario:<12}{r['requests']:>6}{r['errors']:>5}{r['requests_per_second']:>10.1f}"
                f"{texts_per_s:>10.1f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}"
            )


if __name__ == "__main__":
    sys.exit(main())
