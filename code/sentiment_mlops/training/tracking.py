"""MLflow side of the training job: the parent run's parameters, one nested run per model (metrics,
plots, the whole pipeline), registration, and the promotion of the best model through the gate.

mlflow is imported inside the functions so `--help` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pyspark
from pyspark.sql import DataFrame

from sentiment_mlops.monitoring.profile import PROFILE_ARTIFACT
from sentiment_mlops.registry import lookups as registry
from sentiment_mlops.registry import promotion
from sentiment_mlops.registry.spark_versions import SPARK_VERSION_TAG
from sentiment_mlops.training import metrics, plots, profiling
from sentiment_mlops.training.data_loading import LoadReport
from sentiment_mlops.training.errors import TrainingError
from sentiment_mlops.training.fitting import ModelResult, gate_accuracy
from sentiment_mlops.training.model_catalog import MODEL_SPECS

log = logging.getLogger("sentiment_mlops.training")

# Pinned so log_model does not spend ~20 s inferring requirements in a second JVM; the model needs the
# pyspark it was saved with (or newer), so that one is pinned.
MODEL_PIP_REQUIREMENTS = [f"pyspark=={pyspark.__version__}", "mlflow==3.17.2", "pandas<3", "pyarrow"]
PARENT_RUN_NAME = "multimodel-training"


def spark_version() -> str:
    """The running Spark's version (the JVM's, which on a cluster image is what saves the model)."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    return session.version if session is not None else pyspark.__version__


def model_signature():
    """The logged models' signature: a string column `text` in, a double `prediction` out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema([ColSpec("double", "prediction")]))


def log_run_inputs(mlflow, args: argparse.Namespace, report: LoadReport, split_counts: dict[str, int]) -> None:
    """The parent run's parameters (the job's arguments) and row counts (loaded, split)."""
    mlflow.log_params(
        {
            "input": args.input,
            "num_features": args.num_features,
            "bigrams": args.bigrams,
            "lexicon": args.lexicon,
            "cleaning_rules": args.cleaning_rules,
            "nb_scaling": args.nb_scaling,
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
            SPARK_VERSION_TAG: spark_version(),
        }
    )
    mlflow.log_metrics({f"rows_{k}": v for k, v in report.as_dict().items() if isinstance(v, int)})
    mlflow.log_metrics({f"split_{k}": v for k, v in split_counts.items()})


def log_plots(mlflow, result: ModelResult, test: DataFrame, args: argparse.Namespace, workdir: Path) -> None:
    """Confusion-matrix and ROC PNGs of `result` on the test split, as artifacts under `plots/`."""
    spec = MODEL_SPECS[result.key]
    cm_png = plots.confusion_matrix_png(
        result.test_confusion, f"{result.display_name} (test)", workdir / f"confusion_matrix_{result.key}.png"
    )
    predictions = result.model.transform(test)
    fpr, tpr = metrics.roc_points(metrics.sample_scores(predictions, spec.has_probability, args.roc_sample, args.seed))
    note = "" if spec.has_probability else "score: raw margin, LinearSVC has no probability"
    roc = plots.roc_png(
        fpr, tpr, result.test["auc"], f"{result.display_name} ROC (test)", workdir / f"roc_{result.key}.png", note
    )
    mlflow.log_artifact(str(cm_png), "plots")
    mlflow.log_artifact(str(roc), "plots")


def log_model_run(
    mlflow,
    result: ModelResult,
    test: DataFrame,
    args: argparse.Namespace,
    workdir: Path,
    profile_inputs: profiling.ProfileInputs | None = None,
) -> None:
    """One nested run: params, metrics, confusion-matrix and ROC PNGs, the whole pipeline, and (with
    `profile_inputs`) the reference profile the monitoring DAG measures drift against. Sets
    `result.run_id`."""
    spec = MODEL_SPECS[result.key]
    with mlflow.start_run(run_name=result.display_name, nested=True) as run:
        result.run_id = run.info.run_id
        mlflow.set_tags({"model_type": result.display_name, SPARK_VERSION_TAG: spark_version()})
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
        log_plots(mlflow, result, test, args, workdir)
        if profile_inputs is not None:
            describe = {"model_type": result.display_name, "run_id": result.run_id}
            mlflow.log_dict(profiling.model_profile(result.model, profile_inputs, describe), PROFILE_ARTIFACT)
        if not spec.has_probability:
            mlflow.set_tag("auc_score", "raw margin (rawPrediction[1]); LinearSVC outputs no probability")
        import mlflow.spark

        mlflow.spark.log_model(
            result.model, "model", signature=model_signature(), pip_requirements=MODEL_PIP_REQUIREMENTS
        )


def register(client, result: ModelResult, name: str) -> str:
    """Register the model of `result`'s run under `name`, tagged with its type and test metrics;
    returns the new version."""
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
            SPARK_VERSION_TAG: spark_version(),
        },
    )
    return str(mv.version)


def log_and_register_models(
    mlflow,
    client,
    results: list[ModelResult],
    splits: tuple[DataFrame, DataFrame],
    args: argparse.Namespace,
    workdir: Path,
    alias: str,
    profile_inputs: profiling.ProfileInputs | None = None,
) -> None:
    """Each model: its nested run (plots on the test split, the first of `splits`), then its own
    registered model (one per algorithm) with the candidate alias and, through the same gate as the
    best model (measured on the gate split, the second of `splits`), its own `alias` (production), so
    `serving_model_name=<base>-logisticregression` with stage Production has a version. Sets each
    result's run id, registered name and version, and gate decision."""
    test, gate_split = splits
    for result in results:
        log_model_run(mlflow, result, test, args, workdir, profile_inputs)
        result.registered_name = registry.registered_name(args.registered_model_name, result.key)
        result.registered_version = register(client, result, result.registered_name)
        client.set_registered_model_alias(result.registered_name, registry.CANDIDATE_ALIAS, result.registered_version)
        result.promotion = gate_and_promote(
            client, result, result.registered_name, result.registered_version, alias, gate_split, args
        ).as_dict()
        log.info(
            "registered %s v%s (@%s: %s)",
            result.registered_name,
            result.registered_version,
            alias,
            result.promotion["reason"],
        )


def current_production_accuracy(
    client,
    best_name: str,
    alias: str,
    test: DataFrame,
) -> tuple[float | None, str | None]:
    """Accuracy of the version that holds the alias now, measured on this run's gate split `test`."""
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
    args,
) -> promotion.PromotionDecision:
    """Gate against the version holding the alias (both measured on `test`: the grouped split when
    the run has one, see fitting.gate_accuracy), then move the alias only if that version still
    holds it (compare and set): another training job promoting in between, such as the pipeline's
    parallel CV variant, gets the new model re-measured on this split instead of overwritten."""
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


def register_and_promote_best(
    mlflow, client, best: ModelResult, test: DataFrame, args: argparse.Namespace, alias: str
) -> dict[str, object]:
    """Register the best model under the `-best` name, gate it and maybe move `alias` to it, and record
    the decision on the parent run. Returns the decision as the summary's `promotion` entry."""
    best_name = registry.registered_name(args.registered_model_name, registry.BEST_SUFFIX)
    best_version = register(client, best, best_name)
    decision = gate_and_promote(client, best, best_name, best_version, alias, test, args)
    log.info(
        "promotion of %s v%s to @%s: %s (%s)",
        best_name,
        best_version,
        alias,
        "PROMOTED" if decision.promote else "KEPT CURRENT",
        decision.reason,
    )
    entry = {**decision.as_dict(), "registered_model": best_name, "candidate_version": best_version, "alias": alias}
    mlflow.set_tags({"best_model": best.display_name, "promotion": "promoted" if decision.promote else "kept"})
    mlflow.log_metrics(
        {
            "best_test_accuracy": best.test["accuracy"],
            "best_test_auc": best.test["auc"],
            **({"best_grouped_accuracy": best.grouped["accuracy"]} if best.grouped else {}),
            "promoted": float(decision.promote),
        }
    )
    mlflow.log_dict(entry, "promotion_decision.json")
    return entry
