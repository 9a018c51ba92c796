"""Fitting: the shared feature pipeline once, then each classifier of the catalog (optionally through
cross-validation), each evaluated on the validation and test splits and on the grouped
(held-out-topic) split when there is one.

Every result holds the whole PipelineModel (cleaning + features + classifier) that serving loads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pyspark.ml import PipelineModel
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import DataFrame, SparkSession

from sentiment_mlops.features.text_cleaning import RULE_VERSIONS, Rules
from sentiment_mlops.training import metrics, nb_scaling
from sentiment_mlops.training.model_catalog import (
    DEFAULT_BIGRAMS,
    DEFAULT_LEXICON,
    DEFAULT_NB_SCALING,
    DEFAULT_RULES,
    FEATURES_COL,
    LABEL_COL,
    MODEL_SPECS,
    UNSCALED_FEATURES_COL,
    ModelSpec,
    feature_pipeline,
)

log = logging.getLogger("sentiment_mlops.training")

# Parameters reported for a model fitted without CV (with CV, the grid's winning values are reported).
_TUNED = {"regParam", "elasticNetParam", "maxIter", "numTrees", "maxDepth", "maxBins"}


@dataclass
class ModelResult:
    """One fitted model: its metrics, parameters and, once tracked, its MLflow run and registry version."""

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
    promotion: dict[str, object] = field(default_factory=dict)  # this algorithm's own gate decision


def fit_one(spec: ModelSpec, train_features: DataFrame, enable_cv: bool, cv_folds: int, seed: int):
    """Fit the classifier on precomputed features; with CV, the best of the spec's grid.
    Returns (fitted classifier, its parameters; with CV also `cv_avg_auc`)."""
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


def fit_feature_model(
    train: DataFrame,
    num_features: int,
    bigrams: bool = DEFAULT_BIGRAMS,
    lexicon: bool = DEFAULT_LEXICON,
    rules: Rules = RULE_VERSIONS[DEFAULT_RULES],
    nb: bool = DEFAULT_NB_SCALING,
) -> PipelineModel:
    """The feature pipeline fitted on `train`; with `nb`, followed by the NB log-count-ratio scaling
    fitted on the same rows (training/nb_scaling.py)."""
    if not nb:
        return feature_pipeline(num_features, bigrams, lexicon, rules).fit(train)
    unscaled = feature_pipeline(num_features, bigrams, lexicon, rules, UNSCALED_FEATURES_COL).fit(train)
    scaler = nb_scaling.scaling_stage(unscaled.transform(train), UNSCALED_FEATURES_COL, FEATURES_COL)
    return PipelineModel(stages=[*unscaled.stages, scaler])


def featurize(
    train: DataFrame,
    val: DataFrame,
    test: DataFrame,
    num_features: int,
    enable_caching: bool,
    timings: dict[str, float],
    bigrams: bool = DEFAULT_BIGRAMS,
    lexicon: bool = DEFAULT_LEXICON,
    cleaning_rules: str = DEFAULT_RULES,
    nb: bool = DEFAULT_NB_SCALING,
) -> tuple[PipelineModel, DataFrame, DataFrame, DataFrame]:
    """Fit the feature pipeline on `train`; returns it and the three splits transformed (cached and
    materialised when `enable_caching`). Records `features_fit` (and `features_cache`) in `timings`."""
    t0 = time.perf_counter()
    feature_model = fit_feature_model(train, num_features, bigrams, lexicon, RULE_VERSIONS[cleaning_rules], nb)
    timings["features_fit"] = time.perf_counter() - t0
    # Only what the classifiers and the metrics read: the pipeline's intermediate columns (tokens, TF,
    # the lexicon's six token arrays) would take cache memory for nothing.
    train_f, val_f, test_f = (feature_model.transform(df).select(LABEL_COL, FEATURES_COL) for df in (train, val, test))
    if enable_caching:
        t0 = time.perf_counter()
        train_f, val_f, test_f = (df.cache() for df in (train_f, val_f, test_f))
        for df in (train_f, val_f, test_f):
            df.count()
        timings["features_cache"] = time.perf_counter() - t0
    return feature_model, train_f, val_f, test_f


def fit_and_evaluate(
    key: str,
    feature_model: PipelineModel,
    features: tuple[DataFrame, DataFrame, DataFrame],
    enable_cv: bool,
    cv_folds: int,
    seed: int,
    timings: dict[str, float],
    grouped_f: DataFrame | None = None,
) -> ModelResult:
    """Fit the catalog's model `key` on the featurized train split and evaluate it on validation,
    test and (when given) the featurized grouped split; records `KEY_fit` and `KEY_evaluate` in
    `timings`."""
    train_f, val_f, test_f = features
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
    return ModelResult(
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
    lexicon: bool = DEFAULT_LEXICON,
    cleaning_rules: str = DEFAULT_RULES,
    nb: bool = DEFAULT_NB_SCALING,
) -> list[ModelResult]:
    """Fit the shared feature pipeline once, then each classifier of `model_keys`; returns one result
    per key, in order, each also measured on `grouped` when given. Stage timings go into
    `stage_seconds` when given."""
    timings = stage_seconds if stage_seconds is not None else {}
    feature_model, train_f, val_f, test_f = featurize(
        train, val, test, num_features, enable_caching, timings, bigrams, lexicon, cleaning_rules, nb
    )
    grouped_f = feature_model.transform(grouped) if grouped is not None else None
    features = (train_f, val_f, test_f)
    return [
        fit_and_evaluate(key, feature_model, features, enable_cv, cv_folds, seed, timings, grouped_f)
        for key in model_keys
    ]


def gate_accuracy(result: ModelResult) -> float:
    """The accuracy `best` and the promotion gate use: the held-out-topic split when there is one
    (the better predictor of out-of-domain accuracy, see training/topic_split.py), else test."""
    grouped = getattr(result, "grouped", None) or {}  # a bare test/val stand-in may have no grouped metrics
    return float(grouped["accuracy"]) if "accuracy" in grouped else float(result.test["accuracy"])


def pick_best(results: list[ModelResult]) -> ModelResult:
    """The result with the highest gate accuracy (test AUC breaks ties)."""
    return max(results, key=lambda r: (gate_accuracy(r), r.test["auc"]))
