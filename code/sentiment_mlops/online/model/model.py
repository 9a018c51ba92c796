"""The loaded pipeline (:class:`SparkFreeModel`) and its loading: the saved stages are checked
(stage types, column wiring, cleaning SQL, Spark 3+ hashing, no thresholds) and anything this
package cannot reproduce exactly is refused with UnsupportedModelError."""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sentiment_mlops.features import lexicon
from sentiment_mlops.features import terms as bigram_terms
from sentiment_mlops.features.text_cleaning import (
    CLEAN_TEXT_COL,
    RAW_TEXT_COL,
    clean_text,
    cleaner_for_sql,
    cleaning_sql,
)
from sentiment_mlops.online.model.artifacts import (
    SPARK_ML,
    StageInfo,
    UnsupportedModelError,
    dense_matrix,
    dense_vector,
    read_data,
    read_metadata,
    spark_major,
    stage_info,
)
from sentiment_mlops.online.model.stages import (
    Classifier,
    DecisionTree,
    HashingTFStage,
    IDFStage,
    LexiconCountsStage,
    LinearSVCStage,
    LogisticRegressionStage,
    Prediction,
    RandomForestStage,
    RegexTokenizerStage,
    ScalingStage,
    StopWordsStage,
    assemble,
)

# --------------------------------------------------------------------------------------------
# The model.

EXPECTED_STAGES = (
    "feature.SQLTransformer",
    "feature.RegexTokenizer",
    "feature.StopWordsRemover",
    "feature.HashingTF",
    "feature.IDFModel",
)
# With --bigrams: unigrams and bigrams (features.terms) are hashed together.
EXPECTED_STAGES_BIGRAMS = (
    *EXPECTED_STAGES[:3],
    "feature.NGram",
    "feature.SQLTransformer",
    *EXPECTED_STAGES[3:],
)
# With --lexicon, between IDF and the classifier: one StopWordsRemover per bucket, then these two.
LEXICON_REMOVER = "feature.StopWordsRemover"
LEXICON_TAIL = ["feature.SQLTransformer", "feature.VectorAssembler"]
SCALING = "feature.ElementwiseProduct"  # with --nb-scaling, just before the classifier
CLASSIFIERS = {
    "classification.LogisticRegressionModel",
    "classification.LinearSVCModel",
    "classification.RandomForestClassificationModel",
}


class SparkFreeModel:
    """The fitted pipeline, scored in Python. Immutable after loading, so threads may share it."""

    def __init__(
        self,
        tokenizer: RegexTokenizerStage,
        stop_words: StopWordsStage,
        hashing: HashingTFStage,
        idf: IDFStage,
        classifier: Classifier,
        spark_version: str,
        source: str,
        cleaner: Callable[[str | None], str] = clean_text,
        bigrams: bool = False,
        lexicon_counts: LexiconCountsStage | None = None,
        scaling: ScalingStage | None = None,
    ) -> None:
        self.scaling = scaling
        self.cleaner = cleaner
        self.bigrams = bigrams
        self.lexicon_counts = lexicon_counts
        self.tokenizer = tokenizer
        self.stop_words = stop_words
        self.hashing = hashing
        self.idf = idf
        self.classifier = classifier
        self.spark_version = spark_version
        self.source = source

    @property
    def model_type(self) -> str:
        return self.classifier.display_name

    @property
    def has_probability(self) -> bool:
        return self.classifier.has_probability

    @property
    def num_features(self) -> int:
        """The classifier's input size: the hashed terms, then the lexicon counts when present."""
        extra = len(self.lexicon_counts.removers) if self.lexicon_counts else 0
        return self.hashing.num_features + extra

    # Stage by stage, for tests and debugging.
    def clean(self, text: str | None) -> str:
        return self.cleaner(text)

    def tokens(self, text: str | None) -> list[str]:
        return self.tokenizer(self.cleaner(text))

    def filtered_tokens(self, text: str | None) -> list[str]:
        return self.stop_words(self.tokens(text))

    def terms(self, text: str | None) -> list[str]:
        """What HashingTF hashes: the filtered tokens, then their bigrams when the model has them."""
        tokens = self.filtered_tokens(text)
        return bigram_terms.terms(tokens) if self.bigrams else tokens

    def term_frequencies(self, text: str | None) -> dict[int, float]:
        return self.hashing(self.terms(text))

    def tfidf(self, text: str | None) -> tuple[list[int], list[float]]:
        """The sparse TF-IDF vector as (sorted indices, values)."""
        return self.idf(self.term_frequencies(text))

    def lexicon_features(self, text: str | None) -> list[float]:
        """The lexicon counts per strength bucket (features.lexicon); [] without them."""
        return self.lexicon_counts(self.filtered_tokens(text)) if self.lexicon_counts else []

    def unscaled_features(self, text: str | None) -> tuple[list[int], list[float]]:
        """TF-IDF, then the lexicon counts assembled after it when the model has them."""
        if self.lexicon_counts is None:
            return self.tfidf(text)
        tokens = self.filtered_tokens(text)
        terms = bigram_terms.terms(tokens) if self.bigrams else tokens
        tfidf = self.idf(self.hashing(terms))
        return assemble(tfidf, self.hashing.num_features, self.lexicon_counts(tokens))

    def features(self, text: str | None) -> tuple[list[int], list[float]]:
        """The classifier's sparse input as (sorted indices, values): the unscaled features, times
        the NB log-count ratios when the model has them."""
        unscaled = self.unscaled_features(text)
        return self.scaling(unscaled) if self.scaling else unscaled

    def predict_one(self, text: str | None) -> Prediction:
        indices, values = self.features(text)
        return self.classifier(indices, values)

    def predict(self, texts: Iterable[str | None]) -> list[Prediction]:
        return [self.predict_one(t) for t in texts]

    def describe(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "has_probability": self.has_probability,
            "probability": "P(positive) = Spark probability[1]"
            if self.has_probability
            else "none: LinearSVC outputs no probability (raw margin only)",
            "num_features": self.num_features,
            "bigrams": self.bigrams,
            "lexicon": self.lexicon_counts is not None,
            "nb_scaling": self.scaling is not None,
            "spark_version": self.spark_version,
        }


def _check_wiring(stages: Sequence[StageInfo], features_col: str | None = None) -> None:
    """The core stages (cleaning to IDF, then the classifier) must form one chain: each reads the
    column the previous one wrote; with lexicon stages between IDF and the classifier, the classifier
    reads `features_col` (the assembler's output, checked by _lexicon_stages)."""
    # The SQLTransformers' columns are fixed by cleaning_sql() and terms_sql() (checked separately).
    previous_out = CLEAN_TEXT_COL
    idf = next(s for s in stages if s.short_name == "IDFModel")
    core = stages[1 : idf.index + 1]
    for stage in core:
        if stage.short_name == "SQLTransformer":
            previous_out = bigram_terms.TERMS_COL
            continue
        if stage.param("inputCol") != previous_out:
            raise UnsupportedModelError(
                f"stage {stage.index} ({stage.short_name}) reads {stage.params.get('inputCol')!r}, "
                f"but the previous stage writes {previous_out!r}: not a linear text pipeline"
            )
        previous_out = stage.param("outputCol")
    previous_out = features_col or previous_out
    classifier = stages[-1]
    if classifier.param("featuresCol") != previous_out:
        raise UnsupportedModelError(
            f"classifier reads {classifier.params.get('featuresCol')!r}, but the features are in {previous_out!r}"
        )


def _terms_stage(ngram: StageInfo, concat: StageInfo) -> None:
    if int(ngram.param("n")) != bigram_terms.NGRAM_N:
        raise UnsupportedModelError(f"NGram with n={ngram.param('n')}: only n={bigram_terms.NGRAM_N} is reproduced")
    expected = bigram_terms.terms_sql(bigram_terms.FILTERED_TOKENS_COL, ngram.param("outputCol"))
    if concat.param("statement") != expected:
        raise UnsupportedModelError(
            f"the terms SQLTransformer is {concat.param('statement')!r}, not features.terms.terms_sql() {expected!r}"
        )


def _sql_stage(stage: StageInfo) -> Callable[[str | None], str]:
    """The Python twin of the saved cleaning statement (one of the known rule versions)."""
    statement = stage.param("statement")
    cleaner = cleaner_for_sql(statement)
    if cleaner is not None:
        return cleaner
    expected = cleaning_sql(RAW_TEXT_COL, CLEAN_TEXT_COL)
    at = next((i for i, (a, b) in enumerate(zip(statement, expected, strict=False)) if a != b), None)
    at = at if at is not None else min(len(statement), len(expected))
    raise UnsupportedModelError(
        "the model's SQLTransformer statement is not text_cleaning.cleaning_sql(), so the Python "
        f"twin clean_text() would not reproduce it (first difference at character {at}: "
        f"saved ...{statement[max(0, at - 20) : at + 30]!r} vs code ...{expected[max(0, at - 20) : at + 30]!r}). "
        "The model was trained with other cleaning rules: serve it with Spark or with the matching code."
    )


def _tokenizer_stage(stage: StageInfo) -> RegexTokenizerStage:
    pattern = stage.param("pattern")
    try:
        return RegexTokenizerStage(
            pattern=pattern,
            gaps=bool(stage.param("gaps")),
            min_token_length=int(stage.param("minTokenLength")),
            to_lowercase=bool(stage.param("toLowercase")),
        )
    except re.error as exc:
        raise UnsupportedModelError(f"RegexTokenizer pattern {pattern!r} is not a Python regex: {exc}") from exc


def _stop_words_stage(stage: StageInfo) -> StopWordsStage:
    if "inputCols" in stage.explicit or "outputCols" in stage.explicit:
        raise UnsupportedModelError("StopWordsRemover with several columns (inputCols) is not supported")
    case_sensitive = bool(stage.param("caseSensitive"))
    words = [str(w) for w in stage.param("stopWords")]
    if not case_sensitive:
        locale = str(stage.params.get("locale", "en")).lower()
        # Java lower-cases with the stage's locale; Python's str.lower() is locale-free and differs
        # only for the Turkish, Azerbaijani and Lithuanian special cases.
        if locale.split("_")[0] in {"tr", "az", "lt"}:
            raise UnsupportedModelError(f"StopWordsRemover locale {locale!r} lower-cases differently in Python")
        words = [w.lower() for w in words]
    return StopWordsStage(frozenset(words), case_sensitive)


def _hashing_stage(stage: StageInfo) -> HashingTFStage:
    if spark_major(stage.spark_version) < 3:
        # HashingTF.load switches to the pre-3.0 murmur3 variant for such models.
        raise UnsupportedModelError(
            f"HashingTF saved by Spark {stage.spark_version or '?'}: only Spark 3+ hashing is reproduced"
        )
    num = int(stage.param("numFeatures"))
    if num <= 0:
        raise UnsupportedModelError(f"HashingTF numFeatures must be positive, got {num}")
    return HashingTFStage(num_features=num, binary=bool(stage.params.get("binary", False)))


def _idf_stage(stage: StageInfo, num_features: int) -> IDFStage:
    rows = read_data(stage)
    idf = dense_vector(rows[0]["idf"], "IDF idf")
    if len(idf) != num_features:
        raise UnsupportedModelError(f"IDF has {len(idf)} weights but HashingTF makes {num_features} features")
    return IDFStage(idf)


def _no_thresholds(stage: StageInfo) -> None:
    if "thresholds" in stage.explicit:
        raise UnsupportedModelError(f"{stage.short_name} with per-class `thresholds` is not supported")


def _logistic_regression(stage: StageInfo, num_features: int) -> LogisticRegressionStage:
    _no_thresholds(stage)
    row = read_data(stage)[0]
    if row.get("isMultinomial") or int(row["numClasses"]) != 2:
        raise UnsupportedModelError(
            f"only binary logistic regression is supported (numClasses={row['numClasses']}, "
            f"multinomial={row.get('isMultinomial')})"
        )
    coefficients = dense_matrix(row["coefficientMatrix"], "coefficientMatrix")[0]
    intercept = dense_vector(row["interceptVector"], "interceptVector")[0]
    t = float(stage.params.get("threshold", 0.5))
    # LogisticRegressionModel._binaryThresholds: the probability threshold as a margin.
    raw = -math.inf if t == 0.0 else math.inf if t == 1.0 else (0.0 if t == 0.5 else math.log(t / (1.0 - t)))
    _check_size(len(coefficients), num_features, stage)
    return LogisticRegressionStage(coefficients, intercept, raw)


def _linear_svc(stage: StageInfo, num_features: int) -> LinearSVCStage:
    row = read_data(stage)[0]
    coefficients = dense_vector(row["coefficients"], "LinearSVC coefficients")
    _check_size(len(coefficients), num_features, stage)
    return LinearSVCStage(coefficients, float(row["intercept"]), float(stage.params.get("threshold", 0.0)))


def _random_forest(stage: StageInfo, num_features: int) -> RandomForestStage:
    _no_thresholds(stage)
    num_classes = int(stage.metadata.get("numClasses", 0))
    if num_classes != 2:
        raise UnsupportedModelError(f"only binary random forests are supported (numClasses={num_classes})")
    _check_size(int(stage.metadata.get("numFeatures", num_features)), num_features, stage)
    by_tree: dict[int, dict[int, dict[str, Any]]] = {}
    for row in read_data(stage):
        node = row["nodeData"]
        by_tree.setdefault(int(row["treeID"]), {})[int(node["id"])] = node
    trees = []
    for tree_id in sorted(by_tree):
        nodes = by_tree[tree_id]
        if sorted(nodes) != list(range(len(nodes))):
            raise UnsupportedModelError(f"tree {tree_id}: node ids are not 0..{len(nodes) - 1}")
        ordered = [nodes[i] for i in range(len(nodes))]
        feature, threshold, cats = [], [], []
        for n in ordered:
            leaf = n["leftChild"] == -1
            split = n.get("split") or {}
            feature.append(-1 if leaf else int(split["featureIndex"]))
            values = split.get("leftCategoriesOrThreshold") or [0.0]
            categorical = not leaf and int(split.get("numCategories", -1)) != -1
            threshold.append(float(values[0]) if not leaf and not categorical else 0.0)
            cats.append(frozenset(float(v) for v in values) if categorical else None)
            if len(n["impurityStats"]) != num_classes:
                raise UnsupportedModelError(f"tree {tree_id}: impurity stats are not class counts")
        trees.append(
            DecisionTree(
                feature=feature,
                threshold=threshold,
                left_categories=cats,
                left=[int(n["leftChild"]) for n in ordered],
                right=[int(n["rightChild"]) for n in ordered],
                stats=[[float(c) for c in n["impurityStats"]] for n in ordered],
            )
        )
    expected_trees = stage.metadata.get("numTrees")
    if expected_trees is not None and int(expected_trees) != len(trees):
        raise UnsupportedModelError(f"random forest metadata says {expected_trees} trees, data has {len(trees)}")
    return RandomForestStage(tuple(trees), num_classes)


def _check_size(size: int, num_features: int, stage: StageInfo) -> None:
    if size != num_features:
        raise UnsupportedModelError(f"{stage.short_name} expects {size} features, the pipeline makes {num_features}")


def load_spark_ml_dir(path: str | Path, source: str | None = None) -> SparkFreeModel:
    """Load a PipelineModel folder as written by `PipelineModel.write().save(path)`."""
    root = Path(path)
    meta = read_metadata(root)
    if meta.get("class") != SPARK_ML + "PipelineModel":
        raise UnsupportedModelError(f"{root} holds a {meta.get('class')}, not a Spark PipelineModel")
    uids = list((meta.get("paramMap") or {}).get("stageUids") or [])
    stages = []
    # Spark's Pipeline writer (getStagePath) zero-pads the index to the digits of the stage count:
    # "3_HashingTF_..." in a pipeline of 9 stages, "03_HashingTF_..." in one of 10 to 99.
    digits = len(str(len(uids)))
    for i, uid in enumerate(uids):
        folder = root / "stages" / f"{str(i).zfill(digits)}_{uid}"
        if not folder.is_dir():
            raise UnsupportedModelError(f"stage folder {folder.name} missing under {root / 'stages'}")
        stages.append(stage_info(i, folder))
    found = [s.class_name.removeprefix(SPARK_ML) for s in stages]
    bigrams = tuple(found[: len(EXPECTED_STAGES_BIGRAMS)]) == EXPECTED_STAGES_BIGRAMS
    core = len(EXPECTED_STAGES_BIGRAMS if bigrams else EXPECTED_STAGES)
    scaled = len(found) >= 2 and found[-2] == SCALING
    extra = found[core : -2 if scaled else -1]
    lexicon_block = len(extra) >= 3 and extra[-2:] == LEXICON_TAIL and set(extra[:-2]) == {LEXICON_REMOVER}
    if (
        len(found) <= core
        or tuple(found[:core]) != (EXPECTED_STAGES_BIGRAMS if bigrams else EXPECTED_STAGES)
        or (extra and not lexicon_block)
        or found[-1] not in CLASSIFIERS
    ):
        known = {*EXPECTED_STAGES_BIGRAMS, *LEXICON_TAIL, SCALING, *CLASSIFIERS}
        unknown = [c for c in found if c not in known]
        raise UnsupportedModelError(
            "unsupported pipeline: expected stages "
            f"{' -> '.join(s.split('.')[-1] for s in EXPECTED_STAGES)} [with NGram -> SQLTransformer before "
            "HashingTF] [then StopWordsRemover... -> SQLTransformer -> VectorAssembler (lexicon)] "
            "[-> ElementwiseProduct (NB scaling)] -> one of "
            f"{sorted(c.split('.')[-1] for c in CLASSIFIERS)}, found {' -> '.join(c.split('.')[-1] for c in found)}"
            + (f" (unknown stage types: {', '.join(unknown)})" if unknown else "")
        )
    cleaner = _sql_stage(stages[0])
    idf_info = stages[core - 1]
    counts = _lexicon_stages(stages[core : core + len(extra)], idf_info.param("outputCol")) if extra else None
    features_col = stages[core + len(extra) - 1].param("outputCol")
    scaling = _scaling_stage(stages[-2], features_col) if scaled else None
    _check_wiring(stages, stages[-2].param("outputCol") if extra or scaled else None)
    if bigrams:
        _terms_stage(stages[3], stages[4])
    hashing = _hashing_stage(stages[core - 2])
    n = hashing.num_features + (len(counts.removers) if counts else 0)
    if scaling is not None and len(scaling.factors) != n:
        raise UnsupportedModelError(
            f"ElementwiseProduct scales {len(scaling.factors)} features, the pipeline makes {n}"
        )
    return SparkFreeModel(
        tokenizer=_tokenizer_stage(stages[1]),
        stop_words=_stop_words_stage(stages[2]),
        hashing=hashing,
        idf=_idf_stage(idf_info, hashing.num_features),
        classifier=_classifier(found[-1], stages[-1], n),
        spark_version=str(meta.get("sparkVersion", "")),
        source=source or str(root),
        cleaner=cleaner,
        bigrams=bigrams,
        lexicon_counts=counts,
        scaling=scaling,
    )


def _scaling_stage(stage: StageInfo, features_col: str) -> ScalingStage:
    if stage.param("inputCol") != features_col:
        raise UnsupportedModelError(f"ElementwiseProduct reads {stage.param('inputCol')!r}, not {features_col!r}")
    return ScalingStage(dense_vector(stage.param("scalingVec"), "ElementwiseProduct scalingVec"))


def _lexicon_stages(stages: Sequence[StageInfo], tfidf_col: str) -> LexiconCountsStage:
    """features.lexicon's stages: removers over the filtered tokens, the counts statement, and the
    assembler of [TF-IDF, counts...]; refused unless each is exactly what the Python twin computes."""
    *removers, counts_sql, assembler = stages
    for remover in removers:
        if remover.param("inputCol") != bigram_terms.FILTERED_TOKENS_COL:
            raise UnsupportedModelError(
                f"lexicon stage {remover.index} reads {remover.params.get('inputCol')!r}, "
                f"not {bigram_terms.FILTERED_TOKENS_COL!r}"
            )
    inputs = list(assembler.param("inputCols"))
    if not inputs or inputs[0] != tfidf_col:
        raise UnsupportedModelError(f"VectorAssembler assembles {inputs}, which does not start with {tfidf_col!r}")
    expected = lexicon.counts_sql(
        bigram_terms.FILTERED_TOKENS_COL, [r.param("outputCol") for r in removers], inputs[1:]
    )
    if counts_sql.param("statement") != expected:
        raise UnsupportedModelError(
            f"the lexicon SQLTransformer is {counts_sql.param('statement')[:200]!r}..., "
            "not features.lexicon.counts_sql() over the lexicon removers"
        )
    return LexiconCountsStage(tuple(_stop_words_stage(r) for r in removers))


def _classifier(kind: str, stage: StageInfo, num_features: int) -> Classifier:
    if kind == "classification.LogisticRegressionModel":
        return _logistic_regression(stage, num_features)
    if kind == "classification.LinearSVCModel":
        return _linear_svc(stage, num_features)
    return _random_forest(stage, num_features)


def load_local(path: str | Path, source: str | None = None) -> SparkFreeModel:
    """A downloaded MLflow model folder (MLmodel + the Spark flavour's `sparkml/`) or a bare
    Spark PipelineModel folder."""
    root = Path(path)
    mlmodel = root / "MLmodel"
    if mlmodel.is_file():
        import yaml  # MLflow's own dependency

        flavors = (yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}).get("flavors") or {}
        spark_flavor = flavors.get("spark")
        if not isinstance(spark_flavor, dict):
            raise UnsupportedModelError(
                f"{source or root} is not an MLflow Spark model (flavours: {', '.join(sorted(flavors)) or 'none'})"
            )
        return load_spark_ml_dir(root / str(spark_flavor.get("model_data", "sparkml")), source or str(root))
    if (root / "metadata").is_dir():
        return load_spark_ml_dir(root, source)
    raise UnsupportedModelError(f"{source or root} holds neither an MLflow model (MLmodel) nor a Spark ML folder")


def load_model(model_uri: str, tracking_uri: str | None = None) -> SparkFreeModel:
    """Download `model_uri` (models:/NAME/VERSION, models:/NAME@alias, runs:/ID/model, a path)
    from MLflow and load it; the download is deleted once the model is in memory."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="spark-free-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=storage_uri(model_uri, tracking_uri),
            dst_path=tmp,
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        return load_local(local, source=model_uri)


def storage_uri(model_uri: str, tracking_uri: str | None) -> str:
    """Where a `models:/` URI's files live, looked up in the registry at `tracking_uri`.

    MLflow resolves `models:/` itself with the process-wide registry URI and ignores the
    `registry_uri` it is given (mlflow 3.17 `ModelsArtifactRepository._get_model_uri_infos`), so a
    process whose MLFLOW_TRACKING_URI or `mlflow.set_tracking_uri` names another server would load
    that server's model of the same name, or fail with RESOURCE_DOES_NOT_EXIST."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    if tracking_uri is None or not ModelsArtifactRepository.is_models_uri(model_uri):
        return model_uri
    from mlflow import MlflowClient
    from mlflow.store.artifact.utils.models import get_model_name_and_version

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    root, sub_path = ModelsArtifactRepository.split_models_uri(model_uri)
    found = get_model_name_and_version(client, root)
    if len(found) == 1:  # models:/m-<id>, a logged model rather than a registered one
        location = client.get_logged_model(found[0]).artifact_location
    else:
        location = client.get_model_version_download_uri(*found)
    return f"{location.rstrip('/')}/{sub_path}" if sub_path else location
