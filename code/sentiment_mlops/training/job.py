"""Multi-model training job: read Sentiment140, fit LR / RF / LinearSVC on TF-IDF features, log them to
MLflow, register one model per algorithm plus the best, and promote the best through the gate.

`main()` parses arguments and `run_training` runs the stages in order; each stage is a function over
DataFrames and plain values (fitting in `fitting`, MLflow in `tracking`, the written output in `report`)
so tests can run them on a few rows. Entry script: `code/sentiment_multimodel.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from sentiment_mlops.core.cli_flags import add_bool_flag
from sentiment_mlops.core.job_logging import configure_logging
from sentiment_mlops.core.settings import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL_NAME
from sentiment_mlops.core.spark_session import delete_path, get_spark, job_settings, path_exists, write_text
from sentiment_mlops.core.storage import join_uri, resolve_uri
from sentiment_mlops.features.text_cleaning import RULE_VERSIONS
from sentiment_mlops.registry import lookups as registry
from sentiment_mlops.registry import mlflow_credentials, promotion
from sentiment_mlops.training import data_loading, fitting, profiling, report, topic_split, tracking
from sentiment_mlops.training.errors import TrainingError
from sentiment_mlops.training.model_catalog import (
    DEFAULT_BIGRAMS,
    DEFAULT_LEXICON,
    DEFAULT_NB_SCALING,
    DEFAULT_RULES,
    parse_model_keys,
)
from sentiment_mlops.training.report import TrainingSummary

log = logging.getLogger("sentiment_mlops.training")

DESCRIPTION = (
    "Multi-model sentiment training job: read Sentiment140, fit LogisticRegression, RandomForest and "
    "LinearSVC on TF-IDF features, log each to MLflow, register them, and promote the best through the "
    "accuracy gate."
)

__all__ = ["TrainingError", "TrainingSummary", "build_arg_parser", "main", "run_training", "validate_args"]


def build_arg_parser() -> argparse.ArgumentParser:
    """The job's command line (every flag the Dataproc job spec and the docs use)."""
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--input", required=True, help="CSV file or folder (gs:// or local)")
    p.add_argument("--output", required=True, help="folder for the best model and training_summary.json")
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    p.add_argument("--mlflow-experiment", default=DEFAULT_EXPERIMENT)
    p.add_argument(
        "--mlflow-credentials-secret",
        default="",
        help="Secret Manager name of the MLflow credentials (registry.mlflow_credentials); else MLFLOW_TRACKING_* env",
    )
    p.add_argument("--registered-model-name", default=DEFAULT_REGISTERED_MODEL_NAME)
    p.add_argument("--num-features", type=int, default=32768)
    # Feature levers (README "Model quality"); each also takes --no-FLAG.
    for flag, default, help_text in (
        ("--bigrams", DEFAULT_BIGRAMS, "hash word bigrams beside the words (NGram stage)"),
        ("--lexicon", DEFAULT_LEXICON, "append VADER lexicon counts (positive/negative by strength) to TF-IDF"),
        ("--nb-scaling", DEFAULT_NB_SCALING, "scale the features by their NB log-count ratios (NB-SVM style)"),
    ):
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
    p.add_argument(
        "--cleaning-rules",
        choices=sorted(RULE_VERSIONS),
        default=DEFAULT_RULES,
        help="cleaning rule version: v2 negation scope; v3 adds caps, emoticon, elongation and !! markers",
    )
    p.add_argument("--train-ratio", type=float, default=0.8)
    p.add_argument("--val-ratio", type=float, default=0.1)
    p.add_argument("--sample-fraction", type=float, default=1.0)
    add_bool_flag(p, "--enable-cv", "cross-validate each model (--cv-folds folds)")
    p.add_argument("--cv-folds", type=int, default=2)
    add_bool_flag(p, "--enable-caching", "persist the feature vectors across models")
    p.add_argument("--max-rows", type=int, default=0, help="random subset of at most N rows (0 = all)")
    p.add_argument("--models", default="all", help="comma list: lr,rf,svc or full names; default all")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--input-layout", choices=("auto", "six", "two"), default="auto")
    p.add_argument("--input-encoding", default=None, help="default: Latin-1 for six columns, UTF-8 for two")
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=promotion.DEFAULT_MIN_ACCURACY,
        help="promotion gate: minimum accuracy for the production alias, on the grouped split "
        "(the test split with --topic-holdout-every 0)",
    )
    add_bool_flag(p, "--force-promote", "promote the best model whatever the gate says")
    p.add_argument(
        "--model-stage",
        default="Production",
        help="stage word or alias the best model is promoted to (Production -> alias production)",
    )
    p.add_argument(
        "--topic-holdout-every",
        type=int,
        default=topic_split.DEFAULT_EVERY,
        help="hold out the tweets of one mid-frequency word in N as the grouped (out-of-topic) split; 0 = off",
    )
    p.add_argument("--roc-sample", type=int, default=20000, help="test rows used to draw each ROC curve")
    return p


def validate_args(args: argparse.Namespace) -> None:
    """Range checks the parser cannot express; sets `args.model_keys`. Raises TrainingError."""
    if args.num_features <= 0:
        raise TrainingError(f"--num-features must be positive, got {args.num_features}")
    if args.topic_holdout_every < 0:
        raise TrainingError(f"--topic-holdout-every must be 0 (off) or positive, got {args.topic_holdout_every}")
    if args.cv_folds < 2:
        raise TrainingError(f"--cv-folds must be at least 2, got {args.cv_folds}")
    if not 0.0 < args.sample_fraction <= 1.0:
        raise TrainingError(f"--sample-fraction must be in (0, 1], got {args.sample_fraction}")
    if args.train_ratio <= 0 or args.val_ratio <= 0 or args.train_ratio + args.val_ratio >= 1.0:
        raise TrainingError(
            f"--train-ratio {args.train_ratio} + --val-ratio {args.val_ratio} must be positive and below 1"
        )
    try:
        args.model_keys = parse_model_keys(args.models)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc


def check_output_writable(spark: SparkSession, output: str) -> None:
    """Write and delete a probe file so a read-only output fails before any fitting."""
    probe = join_uri(output, f"_write_check_{os.getpid()}")
    try:
        write_text(spark, probe, "ok")
        delete_path(spark, probe)
    except Exception as exc:  # py4j wraps the Java IOException
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"output {output} is not writable: {first[:300]}") from exc


def resolve_paths(spark: SparkSession, args: argparse.Namespace) -> tuple[str, str]:
    """The input and output as Spark reads and writes them (settings applied); fails early when the
    input is missing or the output is not writable."""
    settings = job_settings(spark)
    input_uri, output_uri = resolve_uri(args.input, settings), resolve_uri(args.output, settings)
    if not path_exists(spark, input_uri):
        raise TrainingError(f"input not found: {args.input}" + (f" ({input_uri})" if input_uri != args.input else ""))
    check_output_writable(spark, output_uri)
    return input_uri, output_uri


def load_input(
    spark: SparkSession, input_uri: str, args: argparse.Namespace, timings: dict[str, float]
) -> tuple[DataFrame, data_loading.LoadReport]:
    """Labelled rows of the input and the load report; records `read` in `timings`."""
    t0 = time.perf_counter()
    try:
        labelled, load_report = data_loading.load_labelled(spark, input_uri, args.input_layout, args.input_encoding)
    except data_loading.InputDataError as exc:
        raise TrainingError(str(exc)) from exc
    timings["read"] = time.perf_counter() - t0
    return labelled, load_report


def split_input(
    labelled: DataFrame, args: argparse.Namespace, timings: dict[str, float]
) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame | None, dict[str, int]]:
    """Subsample, hold out the grouped (held-out-topic) split, then split the rest into train /
    validation / test; returns the splits (grouped: None when off or empty) and their row counts
    (records `split` in `timings`). Raises TrainingError when a split is empty."""
    labelled = data_loading.subsample(labelled, args.sample_fraction, args.max_rows, args.seed)
    labelled, grouped = topic_split.split_by_topic(labelled, args.topic_holdout_every)
    train, val, test = data_loading.split_dataset(labelled, args.train_ratio, args.val_ratio, args.seed)
    if args.enable_caching:
        train, val, test, grouped = train.cache(), val.cache(), test.cache(), grouped.cache()
    t0 = time.perf_counter()
    counts = {"train": train.count(), "validation": val.count(), "test": test.count()}
    grouped_rows = grouped.count()
    timings["split"] = time.perf_counter() - t0
    log.info("split: %(train)d train, %(validation)d validation, %(test)d test rows", counts)
    log.info("grouped split (held-out topics, never trained on): %d rows", grouped_rows)
    if min(counts.values()) == 0:
        raise TrainingError(f"too few usable rows to split: {counts}")
    counts["grouped"] = grouped_rows
    return train, val, test, (grouped if grouped_rows else None), counts


def fit_models(
    spark: SparkSession,
    splits: tuple[DataFrame, DataFrame, DataFrame, DataFrame | None],
    args: argparse.Namespace,
    timings: dict[str, float],
) -> tuple[list[fitting.ModelResult], fitting.ModelResult]:
    """Fit every requested model on (train, validation, test, grouped); returns all results and the
    best by gate accuracy (grouped when there is a grouped split, else test)."""
    train, val, test, grouped = splits
    results = fitting.train_models(
        spark,
        train,
        val,
        test,
        args.model_keys,
        args.num_features,
        args.enable_cv,
        args.cv_folds,
        args.enable_caching,
        args.seed,
        timings,
        grouped,
        args.bigrams,
        args.lexicon,
        args.cleaning_rules,
        args.nb_scaling,
    )
    best = fitting.pick_best(results)
    log.info(
        "best model by %s accuracy: %s (%.4f)",
        "grouped" if grouped is not None else "test",
        best.display_name,
        fitting.gate_accuracy(best),
    )
    return results, best


def run_training(args: argparse.Namespace, spark: SparkSession) -> TrainingSummary:
    """Run the whole job on validated `args`: load, split, fit, log and register in MLflow, promote
    the best, write the best model and training_summary.json. Returns the summary written."""
    import mlflow
    from mlflow.tracking import MlflowClient

    input_uri, output_uri = resolve_paths(spark, args)
    summary = report.new_summary(args.input, args.output)
    timings = summary.stage_seconds
    labelled, load_report = load_input(spark, input_uri, args, timings)
    summary.load_report = load_report.as_dict()
    train, val, test, grouped, summary.split_counts = split_input(labelled, args, timings)
    results, best = fit_models(spark, (train, val, test, grouped), args, timings)
    # The promotion gates measure the current production model on the same split the candidate's
    # gate accuracy comes from: the grouped split when there is one (fitting.gate_accuracy).
    gate_split = grouped if grouped is not None else test
    summary.best_model = best.key

    mlflow.set_tracking_uri(args.mlflow_uri)
    mlflow.set_experiment(args.mlflow_experiment)
    client = MlflowClient()
    alias = registry.alias_for(args.model_stage)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=tracking.PARENT_RUN_NAME) as parent:
        summary.parent_run_id = parent.info.run_id
        tracking.log_run_inputs(mlflow, args, load_report, summary.split_counts)
        profile_inputs = profiling.profile_inputs(train, test, args.seed, args.cleaning_rules)
        tracking.log_and_register_models(
            mlflow, client, results, (test, gate_split), args, Path(tmp), alias, profile_inputs
        )
        profile_inputs.test_sample.unpersist()
        timings["mlflow_log_and_register"] = time.perf_counter() - t0
        summary.promotion = tracking.register_and_promote_best(mlflow, client, best, gate_split, args, alias)
        summary.models = report.model_entries(results)
        summary.best_model_path = report.save_best_model(best, args.output, output_uri)
        report.write_summary(spark, summary, output_uri)
        mlflow.log_dict(report.summary_dict(summary), report.SUMMARY_FILE)
    log.info("wrote %s and %s", summary.best_model_path, join_uri(args.output, report.SUMMARY_FILE))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: 0 on success (one JSON line on stdout), 2 with one ERROR line otherwise."""
    configure_logging()
    args = build_arg_parser().parse_args(argv)
    try:
        validate_args(args)
        if args.mlflow_credentials_secret:
            mlflow_credentials.apply_secret(args.mlflow_credentials_secret)
        registry.check_tracking_server(args.mlflow_uri)
        spark = get_spark("sentiment-multimodel-training")
        summary = run_training(args, spark)
    except (TrainingError, ValueError, registry.MlflowUnreachableError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "best_model": summary.best_model,
                "promotion": summary.promotion.get("reason"),
                "test_accuracy": {k: round(v["test"]["accuracy"], 4) for k, v in summary.models.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
