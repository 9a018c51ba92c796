"""Benchmark: the training job on the full 100k Sentiment140 sample on local[2].

Wall time and rows/s of each stage and each model, and per model: random-split (test) accuracy and
AUC, grouped-split accuracy (held-out topics, the predictor of out-of-domain accuracy the job gates
on), accuracy on the hand-written out-of-domain set tests/model/data/ood_sanity.tsv scored by the
Spark-free model, and fit time; prints a table and writes bench/results/train.json. Not a test: run
it by hand,

    .venv/bin/python bench/train.py [--input PATH] [--models all] [--enable-cv] [-- JOB FLAGS...]

Flags after `--` go to the training job unchanged (for example `-- --bigrams`), so one lever can be
measured against the defaults.

It starts its own MLflow server (SQLite, temporary folder) so the figures include logging and
registration as a user's run would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SANITY = ROOT / "tests" / "model" / "data" / "ood_sanity.tsv"
DEFAULT_INPUT = ROOT.parent / "shared" / "data" / "sentiment140" / "train_100k.csv"


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(DEFAULT_INPUT))
    parser.add_argument("--models", default="all")
    parser.add_argument("--enable-cv", action="store_true")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train.json"))
    parser.add_argument("job_flags", nargs="*", help="after --: flags passed to the training job")
    return parser.parse_args(argv)


def sanity_accuracy(summary: Any, tracking_uri: str) -> dict[str, float]:
    """Accuracy of each registered model on the hand-written out-of-domain set, Spark-free."""
    from sentiment_mlops.online.model import load_model

    lines = SANITY.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t", 1) for line in lines if line[:1] in ("0", "1")]
    out = {}
    for info in summary.models.values():
        model = load_model(f"runs:/{info['run_id']}/model", tracking_uri)
        out[info["display_name"]] = sum(model.predict_one(t).label == int(y) for y, t in rows) / len(rows)
    return out


def run_job(opts: argparse.Namespace) -> tuple[Any, float, dict[str, float]]:
    """The training job against its own MLflow server; returns its summary, wall seconds and each
    model's accuracy on the sanity set."""
    home = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ.update({"SENTIMENT_HOME": str(home), "SPARK_MASTER": opts.master, "SENTIMENT_BACKEND": "local"})
    from sentiment_mlops.backends.local.mlflow_server import MlflowServer, free_port
    from sentiment_mlops.core.spark_session import get_spark
    from sentiment_mlops.training import job as training_job

    server = MlflowServer(data_dir=home / "mlflow", port=free_port()).start()
    try:
        argv = ["--input", opts.input, "--output", str(home / "out"), "--mlflow-uri", server.url,
                "--models", opts.models, "--enable-caching", "--force-promote"]  # fmt: skip
        if opts.enable_cv:
            argv.append("--enable-cv")
        argv += opts.job_flags
        args = training_job.build_arg_parser().parse_args(argv)
        training_job.validate_args(args)
        spark = get_spark("bench-train")
        t0 = time.perf_counter()
        summary = training_job.run_training(args, spark)
        total = time.perf_counter() - t0
        sanity = sanity_accuracy(summary, server.url)
        spark.stop()
    finally:
        server.stop()
    return summary, total, sanity


def stage_table(summary: Any) -> list[tuple[str, float, int]]:
    """(stage, seconds, rows it went through) for every timed stage of the run."""
    rows = summary.load_report["rows_usable"]
    train_rows = summary.split_counts["train"]
    stages = summary.stage_seconds
    table = [("read + classify", stages.get("read", 0.0), rows), ("split + count", stages.get("split", 0.0), rows),
             ("features fit (clean, tokenize, TF, IDF)", stages.get("features_fit", 0.0), train_rows)]  # fmt: skip
    if "features_cache" in stages:
        table.append(("features transform + cache", stages["features_cache"], rows))
    for key, info in summary.models.items():
        table.append((f"{info['display_name']} fit", stages[f"{key}_fit"], train_rows))
        table.append((f"{info['display_name']} evaluate (val + test)", stages[f"{key}_evaluate"],
                      summary.split_counts["validation"] + summary.split_counts["test"]))  # fmt: skip
    table.append(("MLflow log + register (all models)", stages.get("mlflow_log_and_register", 0.0), 0))
    return table


def print_report(
    summary: Any, table: list[tuple[str, float, int]], master: str, total: float, sanity: dict[str, float]
) -> None:
    rows = summary.load_report["rows_usable"]
    print(f"\nTraining benchmark: {rows:,} usable rows, master {master}, total {total:.1f}s\n")
    print(f"{'stage':48} {'seconds':>9} {'rows/s':>10}")
    for name, seconds, n in table:
        rate = f"{n / seconds:,.0f}" if n and seconds else ""
        print(f"{name:48} {seconds:9.1f} {rate:>10}")
    print(f"\n{'model':22} {'test acc':>9} {'test AUC':>9} {'grouped':>8} {'sanity':>7} {'fit s':>6}")
    for info in summary.models.values():
        t, g = info["test"], info.get("grouped") or {}
        print(f"{info['display_name']:22} {t['accuracy']:9.4f} {t['auc']:9.4f} {g.get('accuracy', float('nan')):8.4f} "
              f"{sanity.get(info['display_name'], float('nan')):7.4f} {info['fit_seconds']:6.1f}")  # fmt: skip
    print(f"best (by grouped accuracy): {summary.best_model}")


def result_record(
    summary: Any, table: list[tuple[str, float, int]], opts: argparse.Namespace, total: float, sanity: dict[str, float]
) -> dict:
    """What bench/results/train.json holds."""
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "master": opts.master, "enable_cv": opts.enable_cv, "job_flags": opts.job_flags,
        "total_seconds": round(total, 2),
        "rows_usable": summary.load_report["rows_usable"], "split": summary.split_counts,
        "stages": [{"stage": n, "seconds": round(s, 2), "rows_per_s": round(r / s) if r and s else None}
                   for n, s, r in table],
        "models": {k: {"test": v["test"], "validation": v["validation"], "grouped": v.get("grouped"),
                       "sanity_accuracy": sanity.get(v["display_name"]), "fit_seconds": v["fit_seconds"]}
                   for k, v in summary.models.items()},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    summary, total, sanity = run_job(opts)
    table = stage_table(summary)
    print_report(summary, table, opts.master, total, sanity)
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(result_record(summary, table, opts, total, sanity), indent=2))
    print(f"\nwrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
