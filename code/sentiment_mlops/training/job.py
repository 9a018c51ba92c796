"""Multi-model training job: read Sentiment140, fit LR / RF / LinearSVC on TF-IDF features, log to
MLflow, register one model per algorithm plus the best, and promote the best through the gate.

`main()` parses arguments; every step is a function over DataFrames so tests can run it on a few
rows. Entry script: `code/sentiment_multimodel.py`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark.ml import PipelineModel
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import DataFrame, SparkSession

from sentiment_mlops.core.job_logging import configure_logging
from sentiment_mlops.core.settings import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL_NAME
from sentiment_mlops.core.spark_session import delete_path, get_spark, job_settings, path_exists, write_text
from sentiment_mlops.core.storage import join_uri, resolve_uri
from sentiment_mlops.registry import lookups as registry
from sentiment_mlops.registry import promotion
from sentiment_mlops.training import data_loading, metrics, plots, topic_split
from sentiment_mlops.training.model_catalog import (
    DEFAULT_BIGRAMS,
    MODEL_SPECS,
    ModelSpec,
    feature_pipeline,
    parse_model_keys,
)

log = logging.getLogger("sentiment_mlops.training")

# Pinned so log_model does not spend ~20 s inferring requirements in a second JVM.
MODEL_PIP_REQUIREMENTS = ["pyspark==4.3.0", "mlflow==3.17.2", "pandas<3", "pyarrow"]


class TrainingError(RuntimeError):
    """A problem a user can fix; reported as one line with a non-zero exit."""


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="CSV file or folder (gs:// or local)")
    p.add_argument("--output", required=True, help="folder for the best model and training_summary.json")
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000"))
    p.add_argument("--mlflow-experiment", default=DEFAULT_EXPERIMENT)
    p.add_argument("--registered-model-name", default=DEFAULT_REGISTERED_MODEL_NAME)
    p.add_argument("--num-features", type=int, default=32768)
    p.add_argument(
        "--bigrams",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_BIGRAMS,
        help="hash word bigrams beside the words (NGram stage)",
    )
    p.add_argument("--train-ratio", type=float, default=0.8)
    p.add_argument("--val-ratio", type=float, default=0.1)
    p.add_argument("--sample-fraction", type=float, default=1.0)
    p.add_argument("--enable-cv", action="store_true")
    p.add_argument("--cv-folds", type=int, default=2)
    p.add_argument("--enable-caching", action="store_true", help="persist the feature vectors across models")
    p.add_argument("--max-rows", type=int, default=0, help="random subset of at most N rows (0 = all)")
    p.add_argument("--models", default="all", help="comma list: lr,rf,svc or full names; default all")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--input-layout", choices=("auto", "six", "two"), default="auto")
    p.add_argument("--input-encoding", default=None, help="default: Latin-1 for six columns, UTF-8 for two")
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=promotion.DEFAULT_MIN_ACCURACY,
        help="promotion gate: minimum test accuracy for the production alias",
    )
    p.add_argument("--force-promote", action="store_true", help="promote the best model whatever the gate says")
    p.add_argument(
        "--model-stage",
        default="Production",
        help="stage word or alias the best model is promoted to (Production -> alias production)",
    )
    p.add_argument(
        "--topic-holdout-every",
        type=int,
        default=9,
        help="hold out the tweets of one mid-frequency word in N as the grouped (out-of-topic) split; 0 = off",
    )
    p.add_argument("--roc-sample", type=int, default=20000, help="test rows used to draw each ROC curve")
    return p


@dataclass
class ModelResult:
    key: str
    display_name: str
    model: PipelineModel
    val: dict[str, float]
    test: dict[str, float]
    test_confusion: list[list[int]]
    fit_seconds: float
    best_params: dict[str, object]
    grouped: dict[str, float] = field(default_factory=dict)  # held-out-topic split; empty when off
    run_id: str = ""
    registered_name: str = ""
    registered_version: str = ""


@dataclass
class TrainingSummary:
    started_at: str
    input: str
    output: str
    load_report: dict[str, object]
    split_counts: dict[str, int]
    models: dict[str, dict[str, object]] = field(default_factory=dict)
    best_model: str = ""
    parent_run_id: str = ""
    promotion: dict[str, object] = field(default_factory=dict)
    best_model_path: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)


def validate_args(args: argparse.Namespace) -> None:
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
    probe = join_uri(output, f"_write_check_{os.getpid()}")
    try:
        write_text(spark, probe, "ok")
        delete_path(spark, probe)
    except Exception as exc:  # py4j wraps the Java IOException
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"output {output} is not writable: {first[:300]}") from exc


def fit_one(spec: ModelSpec, train_features: DataFrame, enable_cv: bool, cv_folds: int, seed: int):  # type: ignore[no-untyped-def]
    """Fit the classifier on precomputed features; with CV, the best of the spec's grid."""
    estimator = spec.build(seed)
    if not enable_cv:
        model = estimator.fit(train_features)
        return model, {p.name: v for p, v in estimator.extractParamMap().items() if p.name in _TUNED}
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    cv = CrossValidator(
        estimator=estimator,
        estimatorParamMaps=spec.grid(estimator),
        evaluator=BinaryClassificationEvaluator(metricName="areaUnderROC"),
        numFolds=cv_folds,
        parallelism=2,
        seed=seed,
    )
    cv_model = cv.fit(train_features)
    best_index = max(range(len(cv_model.avgMetrics)), key=lambda i: cv_model.avgMetrics[i])
    best_params = {p.name: v for p, v in cv.getEstimatorParamMaps()[best_index].items()}
    best_params["cv_avg_auc"] = float(cv_model.avgMetrics[best_index])
    return cv_model.bestModel, best_params


_TUNED = {"regParam", "elasticNetParam", "maxIter", "numTrees", "maxDepth", "maxBins"}


def train_models(
    spark: SparkSession,
    train: DataFrame,
    val: DataFrame,
    test: DataFrame,
    model_keys: list[str],
    num_features: int,
    enable_cv: bool = False,
    cv_folds: int = 2,
    enable_caching: bool = False,
    seed: int = 42,
    stage_seconds: dict[str, float] | None = None,
    grouped: DataFrame | None = None,
    bigrams: bool = DEFAULT_BIGRAMS,
) -> list[ModelResult]:
    """Fit the shared feature pipeline once, then each classifier; each result holds the whole
    PipelineModel (cleaning + features + classifier) that serving will load."""
    timings = stage_seconds if stage_seconds is not None else {}
    t0 = time.perf_counter()
    feature_model = feature_pipeline(num_features, bigrams).fit(train)
    timings["features_fit"] = time.perf_counter() - t0
    train_f, val_f, test_f = (feature_model.transform(df) for df in (train, val, test))
    grouped_f = feature_model.transform(grouped) if grouped is not None else None
    if enable_caching:
        t0 = time.perf_counter()
        train_f, val_f, test_f = (df.cache() for df in (train_f, val_f, test_f))
        for df in (train_f, val_f, test_f):
            df.count()
        timings["features_cache"] = time.perf_counter() - t0
    results = []
    for key in model_keys:
        spec = MODEL_SPECS[key]
        log.info("fitting %s%s", spec.display_name, " with cross-validation" if enable_cv else "")
        t0 = time.perf_counter()
        classifier, best_params = fit_one(spec, train_f, enable_cv, cv_folds, seed)
        fit_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        val_metrics, _ = metrics.evaluate(classifier.transform(val_f))
        test_metrics, test_conf = metrics.evaluate(classifier.transform(test_f))
        grouped_metrics = metrics.evaluate(classifier.transform(grouped_f))[0] if grouped_f is not None else {}
        timings[f"{key}_fit"] = fit_seconds
        timings[f"{key}_evaluate"] = time.perf_counter() - t0
        log.info(
            "%s: fit %.1fs | val acc %.4f auc %.4f | test acc %.4f auc %.4f f1 %.4f precision %.4f recall %.4f",
            spec.display_name,
            fit_seconds,
            val_metrics["accuracy"],
            val_metrics["auc"],
            test_metrics["accuracy"],
            test_metrics["auc"],
            test_metrics["f1"],
            test_metrics["precision"],
            test_metrics["recall"],
        )
        if grouped_metrics:
            log.info("%s: grouped (held-out topics) acc %.4f", spec.display_name, grouped_metrics["accuracy"])
        results.append(
            ModelResult(
                key=key,
                display_name=spec.display_name,
                model=PipelineModel(stages=[*feature_model.stages, classifier]),
                val=val_metrics,
                test=test_metrics,
                test_confusion=test_conf.as_matrix(),
                fit_seconds=fit_seconds,
                best_params=best_params,
                grouped=grouped_metrics,
            )
        )
    return results


def gate_accuracy(result: ModelResult) -> float:
    """The accuracy `best` and the promotion gate use: the held-out-topic split when there is one
    (the better predictor of out-of-domain accuracy, see training/topic_split.py), else test."""
    grouped = getattr(result, "grouped", None) or {}
    return float(grouped["accuracy"]) if "accuracy" in grouped else float(result.test["accuracy"])


def pick_best(results: list[ModelResult]) -> ModelResult:
    return max(results, key=lambda r: (gate_accuracy(r), r.test["auc"]))


def model_signature():  # type: ignore[no-untyped-def]
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema([ColSpec("double", "prediction")]))


def log_model_run(mlflow, result: ModelResult, test: DataFrame, args: argparse.Namespace, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    """One nested run: params, metrics, confusion-matrix and ROC PNGs, and the whole pipeline."""
    spec = MODEL_SPECS[result.key]
    with mlflow.start_run(run_name=result.display_name, nested=True) as run:
        result.run_id = run.info.run_id
        mlflow.set_tag("model_type", result.display_name)
        mlflow.log_params(
            {
                "model_type": result.display_name,
                "num_features": args.num_features,
                "enable_cv": args.enable_cv,
                "seed": args.seed,
                **{f"param_{k}": v for k, v in result.best_params.items()},
            }
        )
        mlflow.log_metrics({f"val_{k}": v for k, v in result.val.items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in result.test.items()})
        mlflow.log_metrics({f"grouped_{k}": v for k, v in result.grouped.items()})
        mlflow.log_metric("fit_seconds", result.fit_seconds)
        cm_png = plots.confusion_matrix_png(
            result.test_confusion, f"{result.display_name} (test)", workdir / f"confusion_matrix_{result.key}.png"
        )
        predictions = result.model.transform(test)
        fpr, tpr = metrics.roc_points(
            metrics.sample_scores(predictions, spec.has_probability, args.roc_sample, args.seed)
        )
        note = "" if spec.has_probability else "score: raw margin, LinearSVC has no probability"
        roc = plots.roc_png(
            fpr, tpr, result.test["auc"], f"{result.display_name} ROC (test)", workdir / f"roc_{result.key}.png", note
        )
        mlflow.log_artifact(str(cm_png), "plots")
        mlflow.log_artifact(str(roc), "plots")
        if not spec.has_probability:
            mlflow.set_tag("auc_score", "raw margin (rawPrediction[1]); LinearSVC outputs no probability")
        import mlflow.spark

        mlflow.spark.log_model(
            result.model, "model", signature=model_signature(), pip_requirements=MODEL_PIP_REQUIREMENTS
        )


def register(client, result: ModelResult, name: str) -> str:  # type: ignore[no-untyped-def]
    import mlflow

    mv = mlflow.register_model(f"runs:/{result.run_id}/model", name, await_registration_for=120)
    registry.version_tags(
        client,
        name,
        str(mv.version),
        {
            "model_type": result.display_name,
            "test_accuracy": f"{result.test['accuracy']:.6f}",
            "test_auc": f"{result.test['auc']:.6f}",
            **({"grouped_accuracy": f"{result.grouped['accuracy']:.6f}"} if result.grouped else {}),
        },
    )
    return str(mv.version)


def current_production_accuracy(
    client,
    best_name: str,
    alias: str,
    test: DataFrame,  # type: ignore[no-untyped-def]
) -> tuple[float | None, str | None]:
    """Accuracy of the version that holds the alias now, measured on this run's test split."""
    current = registry.resolve_version(client, best_name, alias)
    if current is None:
        return None, None
    import mlflow.spark

    try:
        model = mlflow.spark.load_model(current.uri)
    except Exception as exc:  # an unloadable production model must not block a good replacement
        log.warning(
            "current %s@%s (v%s) could not be loaded (%s); gating on min accuracy only",
            best_name,
            alias,
            current.version,
            str(exc).splitlines()[0][:200],
        )
        return None, current.version
    m, _ = metrics.evaluate(model.transform(test))
    return m["accuracy"], current.version


def gate_and_promote(
    client,
    best: ModelResult,
    best_name: str,
    best_version: str,
    alias: str,
    test: DataFrame,
    args,  # type: ignore[no-untyped-def]
) -> promotion.PromotionDecision:
    """Gate against the version holding the alias (both measured on `test`: the grouped split when
    the run has one), then move the alias only if that version still
    holds it (compare and set): another training job promoting in between, such as the pipeline's
    parallel CV variant, gets the new model re-measured on this test split instead of overwritten."""
    for _attempt in range(3):
        current_acc, current_version = current_production_accuracy(client, best_name, alias, test)
        decision = promotion.decide(
            gate_accuracy(best), current_acc, current_version, args.min_accuracy, args.force_promote
        )
        if not decision.promote:
            return decision
        now = registry.resolve_version(client, best_name, alias)
        if (now.version if now else None) == current_version:
            registry.promote(client, best_name, best_version, alias)
            return decision
        log.info("@%s moved to v%s while gating; measuring it again", alias, now.version if now else None)
    raise TrainingError(f"@{alias} of {best_name} kept moving while this run gated its candidate; try again")


def run_training(args: argparse.Namespace, spark: SparkSession) -> TrainingSummary:
    import mlflow
    from mlflow.tracking import MlflowClient

    settings = job_settings(spark)
    input_uri, output_uri = resolve_uri(args.input, settings), resolve_uri(args.output, settings)
    if not path_exists(spark, input_uri):
        raise TrainingError(f"input not found: {args.input}" + (f" ({input_uri})" if input_uri != args.input else ""))
    check_output_writable(spark, output_uri)

    summary = TrainingSummary(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        input=args.input,
        output=args.output,
        load_report={},
        split_counts={},
    )
    timings = summary.stage_seconds
    t0 = time.perf_counter()
    try:
        labelled, report = data_loading.load_labelled(spark, input_uri, args.input_layout, args.input_encoding)
    except data_loading.InputDataError as exc:
        raise TrainingError(str(exc)) from exc
    summary.load_report = report.as_dict()
    timings["read"] = time.perf_counter() - t0
    labelled = data_loading.subsample(labelled, args.sample_fraction, args.max_rows, args.seed)
    labelled, grouped = topic_split.split_by_topic(labelled, args.topic_holdout_every)
    train, val, test = data_loading.split_dataset(labelled, args.train_ratio, args.val_ratio, args.seed)
    if args.enable_caching:
        train, val, test, grouped = train.cache(), val.cache(), test.cache(), grouped.cache()
    t0 = time.perf_counter()
    summary.split_counts = {"train": train.count(), "validation": val.count(), "test": test.count()}
    grouped_rows = grouped.count()
    timings["split"] = time.perf_counter() - t0
    log.info("split: %(train)d train, %(validation)d validation, %(test)d test rows", summary.split_counts)
    log.info("grouped split (held-out topics, never trained on): %d rows", grouped_rows)
    if min(summary.split_counts.values()) == 0:
        raise TrainingError(f"too few usable rows to split: {summary.split_counts}")

    results = train_models(
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
        grouped if grouped_rows else None,
        args.bigrams,
    )
    summary.split_counts["grouped"] = grouped_rows
    gate_split = grouped if grouped_rows else test
    best = pick_best(results)
    summary.best_model = best.key
    log.info(
        "best model by %s accuracy: %s (%.4f)",
        "grouped" if grouped_rows else "test",
        best.display_name,
        gate_accuracy(best),
    )

    mlflow.set_tracking_uri(args.mlflow_uri)
    mlflow.set_experiment(args.mlflow_experiment)
    client = MlflowClient()
    alias = registry.alias_for(args.model_stage)
    best_name = registry.registered_name(args.registered_model_name, registry.BEST_SUFFIX)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name="multimodel-training") as parent:
        summary.parent_run_id = parent.info.run_id
        mlflow.log_params(
            {
                "input": args.input,
                "num_features": args.num_features,
                "bigrams": args.bigrams,
                "train_ratio": args.train_ratio,
                "val_ratio": args.val_ratio,
                "sample_fraction": args.sample_fraction,
                "max_rows": args.max_rows,
                "enable_cv": args.enable_cv,
                "cv_folds": args.cv_folds,
                "models": ",".join(args.model_keys),
                "seed": args.seed,
                "input_layout": report.layout,
                "topic_holdout_every": args.topic_holdout_every,
            }
        )
        mlflow.log_metrics({f"rows_{k}": v for k, v in report.as_dict().items() if isinstance(v, int)})
        mlflow.log_metrics({f"split_{k}": v for k, v in summary.split_counts.items()})
        for result in results:
            log_model_run(mlflow, result, test, args, Path(tmp))
            result.registered_name = registry.registered_name(args.registered_model_name, result.key)
            result.registered_version = register(client, result, result.registered_name)
            client.set_registered_model_alias(
                result.registered_name, registry.CANDIDATE_ALIAS, result.registered_version
            )
            log.info("registered %s v%s", result.registered_name, result.registered_version)
        timings["mlflow_log_and_register"] = time.perf_counter() - t0

        best_version = register(client, best, best_name)
        decision = gate_and_promote(client, best, best_name, best_version, alias, gate_split, args)
        log.info(
            "promotion of %s v%s to @%s: %s (%s)",
            best_name,
            best_version,
            alias,
            "PROMOTED" if decision.promote else "KEPT CURRENT",
            decision.reason,
        )
        summary.promotion = {
            **decision.as_dict(),
            "registered_model": best_name,
            "candidate_version": best_version,
            "alias": alias,
        }
        mlflow.set_tags({"best_model": best.display_name, "promotion": "promoted" if decision.promote else "kept"})
        mlflow.log_metrics(
            {
                "best_test_accuracy": best.test["accuracy"],
                "best_test_auc": best.test["auc"],
                **({"best_grouped_accuracy": best.grouped["accuracy"]} if best.grouped else {}),
                "promoted": float(decision.promote),
            }
        )
        mlflow.log_dict(summary.promotion, "promotion_decision.json")

        for result in results:
            summary.models[result.key] = {
                "display_name": result.display_name,
                "validation": result.val,
                "test": result.test,
                "grouped": result.grouped,
                "test_confusion_matrix": result.test_confusion,
                "fit_seconds": round(result.fit_seconds, 2),
                "params": result.best_params,
                "run_id": result.run_id,
                "registered_model": result.registered_name,
                "version": result.registered_version,
            }
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        summary.best_model_path = join_uri(args.output, f"best-model-{stamp}")
        best.model.write().overwrite().save(join_uri(output_uri, f"best-model-{stamp}"))
        summary_json = json.dumps(summary_dict(summary), indent=2, default=str)
        write_text(spark, join_uri(output_uri, "training_summary.json"), summary_json)
        mlflow.log_dict(summary_dict(summary), "training_summary.json")
    log.info("wrote %s and %s", summary.best_model_path, join_uri(args.output, "training_summary.json"))
    return summary


def summary_dict(summary: TrainingSummary) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(summary)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_arg_parser().parse_args(argv)
    try:
        validate_args(args)
        registry.check_tracking_server(args.mlflow_uri)
        spark = get_spark("sentiment-multimodel-training")
        summary = run_training(args, spark)
    except (TrainingError, registry.MlflowUnreachableError) as exc:
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
