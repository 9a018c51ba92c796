"""Score the project's fitted Spark PipelineModel in plain Python, without a JVM.

The online server must answer in milliseconds and must not start Spark, so this module reads the
saved stage folders of the MLflow Spark artifact directly (each stage's `metadata/` JSON and
`data/` Parquet, with pyarrow) and reproduces every stage with Spark's own arithmetic:

    SQLTransformer (text_cleaning.clean_text, after checking the saved SQL is one version of cleaning_sql())
    -> RegexTokenizer -> StopWordsRemover [-> NGram(2) -> SQLTransformer terms_sql() (features.terms)]
    -> HashingTF (murmur3, seed 42) -> IDF
    -> LogisticRegression | RandomForestClassificationModel | LinearSVC

Predictions equal Spark's `model.transform` (tests/test_spark_free_model.py checks every stage on
real tweets): sums run in Spark's order (no numpy reductions, no pairwise or compensated sums),
so labels, raw predictions and probabilities are the same doubles. One caveat: the logistic
probability goes through exp(), which is Java's Math.exp in Spark and the C library's here; both
are within 1 ulp of the true value and usually agree to the last bit, but not always: with the
v2 features one real tweet in about 400 got a probability 1 ulp away (labels and margins equal).
LinearSVC has no probability in Spark; `Prediction.probability` is then None
(its margin is in `raw_prediction`).

Anything else (another stage type, another cleaning SQL, a multinomial model, class thresholds)
is refused at load time with UnsupportedModelError rather than scored approximately.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from sentiment_mlops.features import terms as bigram_terms
from sentiment_mlops.features.text_cleaning import (
    CLEAN_TEXT_COL,
    RAW_TEXT_COL,
    clean_text,
    cleaner_for_sql,
    cleaning_sql,
)

SPARK_ML = "org.apache.spark.ml."
HASHING_TF_SEED = 42  # org.apache.spark.ml.feature.HashingTF: private val seed = 42
SENTIMENTS = ("negative", "positive")  # label 0 / 1 (Sentiment140 polarity 0 / 4)

_MASK32 = 0xFFFFFFFF


class UnsupportedModelError(ValueError):
    """The artifact is not a pipeline this module can reproduce exactly."""


# --------------------------------------------------------------------------------------------
# Murmur3 as Spark's HashingTF uses it.


def murmur3_x86_32(data: bytes, seed: int = HASHING_TF_SEED) -> int:
    """Signed 32-bit MurmurHash3_x86_32, as `Murmur3_x86_32.hashUnsafeBytes2` computes it.

    hashUnsafeBytes2 reads whole 4-byte blocks little-endian, folds the 1-3 tail bytes into one
    block and mixes it unconditionally; mixK1(0) == 0, so that is the reference algorithm (the
    older `hashUnsafeBytes` used before Spark 3.0 mixed each tail byte as an int and differs).
    """
    h1 = seed & _MASK32
    length = len(data)
    aligned = length - length % 4
    for i in range(0, aligned, 4):
        h1 ^= _mix_k1(int.from_bytes(data[i : i + 4], "little"))
        h1 = ((h1 << 13) | (h1 >> 19)) & _MASK32
        h1 = (h1 * 5 + 0xE6546B64) & _MASK32
    k1 = 0
    for shift, byte in enumerate(data[aligned:]):
        k1 ^= byte << (8 * shift)
    h1 ^= _mix_k1(k1)
    h1 ^= length
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _MASK32
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _MASK32
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def _mix_k1(k1: int) -> int:
    k1 = (k1 * 0xCC9E2D51) & _MASK32
    k1 = ((k1 << 15) | (k1 >> 17)) & _MASK32
    return (k1 * 0x1B873593) & _MASK32


@lru_cache(maxsize=1 << 16)
def _term_hash(term: str) -> int:
    # Spark hashes UTF8String.fromString(term): Java's encoder turns a lone surrogate into '?',
    # which is what Python's "replace" handler does too. Cached: tweets reuse a small vocabulary.
    return murmur3_x86_32(term.encode("utf-8", "replace"), HASHING_TF_SEED)


def term_index(term: str, num_features: int) -> int:
    """HashingTF.indexOf: nonNegativeMod(murmur3(term), numFeatures) (Python's % is already)."""
    return _term_hash(term) % num_features


# --------------------------------------------------------------------------------------------
# Reading a saved Spark ML folder.


@dataclass(frozen=True)
class StageInfo:
    index: int
    class_name: str
    uid: str
    spark_version: str
    params: dict[str, Any]  # defaultParamMap overlaid with the explicitly set paramMap
    explicit: frozenset[str]  # names set explicitly (paramMap)
    path: Path
    metadata: dict[str, Any]

    @property
    def short_name(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]

    def param(self, name: str) -> Any:
        if name not in self.params:
            raise UnsupportedModelError(f"stage {self.index} ({self.short_name}) has no saved param {name!r}")
        return self.params[name]


def _read_metadata(folder: Path) -> dict[str, Any]:
    meta_dir = folder / "metadata"
    parts = sorted(p for p in meta_dir.glob("part-*") if p.is_file()) if meta_dir.is_dir() else []
    if not parts:
        raise UnsupportedModelError(f"no Spark ML metadata under {meta_dir}")
    # DefaultParamsWriter writes one JSON line into a single text part.
    line = next((ln for ln in parts[0].read_text(encoding="utf-8").splitlines() if ln.strip()), "")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise UnsupportedModelError(f"unreadable Spark ML metadata {parts[0]}: {exc}") from exc


def _stage_info(index: int, folder: Path) -> StageInfo:
    meta = _read_metadata(folder)
    explicit = dict(meta.get("paramMap") or {})
    return StageInfo(
        index=index,
        class_name=str(meta.get("class", "")),
        uid=str(meta.get("uid", "")),
        spark_version=str(meta.get("sparkVersion", "")),
        params={**(meta.get("defaultParamMap") or {}), **explicit},
        explicit=frozenset(explicit),
        path=folder,
        metadata=meta,
    )


def _read_data(stage: StageInfo, sub: str = "data") -> list[dict[str, Any]]:
    folder = stage.path / sub
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise UnsupportedModelError(f"stage {stage.index} ({stage.short_name}) has no Parquet data in {folder}")
    # pyarrow skips the `_SUCCESS` and `.crc` side files (names starting with "_" or ".").
    return pq.read_table(folder).to_pylist()


def _spark_major(version: str) -> int:
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        return 0


def _dense_vector(vec: dict[str, Any] | None, what: str) -> list[float]:
    """Spark's VectorUDT struct (type 0 sparse: size/indices/values, type 1 dense: values)."""
    if vec is None:
        raise UnsupportedModelError(f"{what}: vector is null")
    if vec["type"] == 1:
        return [float(v) for v in vec["values"]]
    if vec["type"] == 0:
        dense = [0.0] * int(vec["size"])
        for i, v in zip(vec["indices"], vec["values"], strict=True):
            dense[i] = float(v)
        return dense
    raise UnsupportedModelError(f"{what}: unknown vector type {vec['type']}")


def _dense_matrix(mat: dict[str, Any], what: str) -> list[list[float]]:
    """Spark's MatrixUDT struct -> rows. Dense values are column-major unless isTransposed; sparse
    is CSC (colPtrs/rowIndices) unless isTransposed, when it is CSR with the roles swapped."""
    rows, cols, transposed = int(mat["numRows"]), int(mat["numCols"]), bool(mat["isTransposed"])
    out = [[0.0] * cols for _ in range(rows)]
    values = mat["values"]
    if mat["type"] == 1:
        for k, v in enumerate(values):
            r, c = (k // cols, k % cols) if transposed else (k % rows, k // rows)
            out[r][c] = float(v)
        return out
    if mat["type"] == 0:
        ptrs, idx = mat["colPtrs"], mat["rowIndices"]
        for major in range(len(ptrs) - 1):
            for k in range(ptrs[major], ptrs[major + 1]):
                r, c = (major, idx[k]) if transposed else (idx[k], major)
                out[r][c] = float(values[k])
        return out
    raise UnsupportedModelError(f"{what}: unknown matrix type {mat['type']}")


# --------------------------------------------------------------------------------------------
# Feature stages.


@dataclass(frozen=True)
class RegexTokenizerStage:
    pattern: str
    gaps: bool
    min_token_length: int
    to_lowercase: bool
    # Java's \w, \d, \s and \b are ASCII-only by default; re.ASCII gives Python the same.
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern, re.ASCII))

    def __call__(self, text: str) -> list[str]:
        s = text.lower() if self.to_lowercase else text
        tokens = _java_split(self.regex, s) if self.gaps else [m.group(0) for m in self.regex.finditer(s)]
        return [t for t in tokens if len(t) >= self.min_token_length]


def _java_split(regex: re.Pattern[str], s: str) -> list[str]:
    """java.util.regex.Pattern.split(s) (limit 0), which Scala's Regex.split calls. Python's
    re.split differs: it returns capture groups and keeps trailing empty strings."""
    parts: list[str] = []
    index = 0
    for m in regex.finditer(s):
        if index == 0 and m.start() == 0 and m.end() == 0:
            continue  # no empty leading substring for a zero-width match at the start
        parts.append(s[index : m.start()])
        index = m.end()
    if index == 0:
        return [s]
    parts.append(s[index:])
    while parts and parts[-1] == "":
        parts.pop()
    return parts


@dataclass(frozen=True)
class StopWordsStage:
    stop_words: frozenset[str]
    case_sensitive: bool

    def __call__(self, tokens: list[str]) -> list[str]:
        if self.case_sensitive:
            return [t for t in tokens if t not in self.stop_words]
        return [t for t in tokens if t.lower() not in self.stop_words]


@dataclass(frozen=True)
class HashingTFStage:
    num_features: int
    binary: bool

    def __call__(self, tokens: list[str]) -> dict[int, float]:
        counts: dict[int, float] = {}
        n = self.num_features
        for token in tokens:
            i = _term_hash(token) % n
            counts[i] = 1.0 if self.binary else counts.get(i, 0.0) + 1.0
        return counts


@dataclass(frozen=True)
class IDFStage:
    idf: list[float]

    def __call__(self, counts: dict[int, float]) -> tuple[list[int], list[float]]:
        # Vectors.sparse sorts by index; IDFModel keeps every index and multiplies in place.
        indices = sorted(counts)
        idf = self.idf
        return indices, [counts[i] * idf[i] for i in indices]


# --------------------------------------------------------------------------------------------
# Classifiers.


@dataclass(frozen=True, slots=True)
class Prediction:
    label: int
    probabilities: tuple[float, ...] | None  # Spark's `probability` vector; None for LinearSVC
    raw_prediction: tuple[float, ...]  # Spark's `rawPrediction` vector (margins, or tree votes)

    @property
    def probability(self) -> float | None:
        """P(label = 1), i.e. P(positive): Spark's probability[1]; None when the model has none."""
        return None if self.probabilities is None else self.probabilities[1]

    @property
    def sentiment(self) -> str:
        return SENTIMENTS[self.label]


def _sparse_dot(indices: list[int], values: list[float], dense: list[float]) -> float:
    # BLAS.dot(sparse, dense|sparse) in Spark: one running sum from 0.0 in index order. Adding the
    # products of zero coefficients (absent from a sparse coefficient vector) never changes it.
    total = 0.0
    for i, v in zip(indices, values, strict=True):
        total += v * dense[i]
    return total


def _exp(x: float) -> float:
    # java.lang.Math.exp overflows to Infinity; Python's math.exp raises instead.
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class LogisticRegressionStage:
    coefficients: list[float]
    intercept: float
    raw_threshold: float  # log(t / (1 - t)) of the probability threshold t (0.0 for t = 0.5)

    display_name = "LogisticRegression"
    has_probability = True

    def __call__(self, indices: list[int], values: list[float]) -> Prediction:
        m = _sparse_dot(indices, values, self.coefficients) + self.intercept
        # raw2probabilityInPlace on rawPrediction (-m, m); prediction from raw2prediction.
        p0 = 1.0 / (1.0 + _exp(m))
        return Prediction(1 if m > self.raw_threshold else 0, (p0, 1.0 - p0), (-m, m))


@dataclass(frozen=True)
class LinearSVCStage:
    coefficients: list[float]
    intercept: float
    threshold: float

    display_name = "LinearSVC"
    has_probability = False

    def __call__(self, indices: list[int], values: list[float]) -> Prediction:
        m = _sparse_dot(indices, values, self.coefficients) + self.intercept
        return Prediction(1 if m > self.threshold else 0, None, (-m, m))


@dataclass(frozen=True)
class DecisionTree:
    """One tree in node-id order (Spark saves ids 0..n-1 with the root at 0)."""

    feature: list[int]  # -1 at a leaf
    threshold: list[float]
    left_categories: list[frozenset[float] | None]  # set for a categorical split
    left: list[int]
    right: list[int]
    stats: list[list[float]]  # impurity stats: class counts (possibly weighted)

    def leaf_stats(self, x: dict[int, float]) -> list[float]:
        node = 0
        feature, left, right = self.feature, self.left, self.right
        while feature[node] >= 0:
            value = x.get(feature[node], 0.0)
            cats = self.left_categories[node]
            goes_left = (value in cats) if cats is not None else (value <= self.threshold[node])
            node = left[node] if goes_left else right[node]
        return self.stats[node]


@dataclass(frozen=True)
class RandomForestStage:
    trees: tuple[DecisionTree, ...]
    num_classes: int

    display_name = "RandomForest"
    has_probability = True

    def __call__(self, indices: list[int], values: list[float]) -> Prediction:
        x = dict(zip(indices, values, strict=True))
        n = self.num_classes
        votes = [0.0] * n
        for tree in self.trees:  # RandomForestClassificationModel.predictRaw
            counts = tree.leaf_stats(x)
            total = 0.0
            for c in counts:
                total += c
            if total != 0:
                for i in range(n):
                    votes[i] += counts[i] / total
        vsum = 0.0  # normalizeToProbabilitiesInPlace
        for v in votes:
            vsum += v
        probs = tuple(v / vsum for v in votes) if vsum != 0 else tuple(votes)
        best = 0  # DenseVector.argmax: the first maximum
        for i in range(1, n):
            if votes[i] > votes[best]:
                best = i
        return Prediction(best, probs, tuple(votes))


Classifier = LogisticRegressionStage | LinearSVCStage | RandomForestStage


# --------------------------------------------------------------------------------------------
# The model.

EXPECTED_STAGES = (
    "feature.SQLTransformer",
    "feature.RegexTokenizer",
    "feature.StopWordsRemover",
    "feature.HashingTF",
    "feature.IDFModel",
)
# Since cleaning v2: unigrams and bigrams (features.terms) are hashed together.
EXPECTED_STAGES_BIGRAMS = (
    *EXPECTED_STAGES[:3],
    "feature.NGram",
    "feature.SQLTransformer",
    *EXPECTED_STAGES[3:],
)
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
    ) -> None:
        self.cleaner = cleaner
        self.bigrams = bigrams
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
        return self.hashing.num_features

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

    def features(self, text: str | None) -> tuple[list[int], list[float]]:
        """The sparse TF-IDF vector as (sorted indices, values)."""
        return self.idf(self.term_frequencies(text))

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
            "spark_version": self.spark_version,
        }


def _check_wiring(stages: Sequence[StageInfo]) -> None:
    """The stages must form one chain: each reads the column the previous one wrote."""
    # The SQLTransformers' columns are fixed by cleaning_sql() and terms_sql() (checked separately).
    previous_out = CLEAN_TEXT_COL
    for stage in stages[1:-1]:
        if stage.short_name == "SQLTransformer":
            previous_out = bigram_terms.TERMS_COL
            continue
        if stage.param("inputCol") != previous_out:
            raise UnsupportedModelError(
                f"stage {stage.index} ({stage.short_name}) reads {stage.params.get('inputCol')!r}, "
                f"but the previous stage writes {previous_out!r}: not a linear text pipeline"
            )
        previous_out = stage.param("outputCol")
    classifier = stages[-1]
    if classifier.param("featuresCol") != previous_out:
        raise UnsupportedModelError(
            f"classifier reads {classifier.params.get('featuresCol')!r}, but IDF writes {previous_out!r}"
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
    if _spark_major(stage.spark_version) < 3:
        # HashingTF.load switches to the pre-3.0 murmur3 variant for such models.
        raise UnsupportedModelError(
            f"HashingTF saved by Spark {stage.spark_version or '?'}: only Spark 3+ hashing is reproduced"
        )
    num = int(stage.param("numFeatures"))
    if num <= 0:
        raise UnsupportedModelError(f"HashingTF numFeatures must be positive, got {num}")
    return HashingTFStage(num_features=num, binary=bool(stage.params.get("binary", False)))


def _idf_stage(stage: StageInfo, num_features: int) -> IDFStage:
    rows = _read_data(stage)
    idf = _dense_vector(rows[0]["idf"], "IDF idf")
    if len(idf) != num_features:
        raise UnsupportedModelError(f"IDF has {len(idf)} weights but HashingTF makes {num_features} features")
    return IDFStage(idf)


def _no_thresholds(stage: StageInfo) -> None:
    if "thresholds" in stage.explicit:
        raise UnsupportedModelError(f"{stage.short_name} with per-class `thresholds` is not supported")


def _logistic_regression(stage: StageInfo, num_features: int) -> LogisticRegressionStage:
    _no_thresholds(stage)
    row = _read_data(stage)[0]
    if row.get("isMultinomial") or int(row["numClasses"]) != 2:
        raise UnsupportedModelError(
            f"only binary logistic regression is supported (numClasses={row['numClasses']}, "
            f"multinomial={row.get('isMultinomial')})"
        )
    coefficients = _dense_matrix(row["coefficientMatrix"], "coefficientMatrix")[0]
    intercept = _dense_vector(row["interceptVector"], "interceptVector")[0]
    t = float(stage.params.get("threshold", 0.5))
    # LogisticRegressionModel._binaryThresholds: the probability threshold as a margin.
    raw = -math.inf if t == 0.0 else math.inf if t == 1.0 else (0.0 if t == 0.5 else math.log(t / (1.0 - t)))
    _check_size(len(coefficients), num_features, stage)
    return LogisticRegressionStage(coefficients, intercept, raw)


def _linear_svc(stage: StageInfo, num_features: int) -> LinearSVCStage:
    row = _read_data(stage)[0]
    coefficients = _dense_vector(row["coefficients"], "LinearSVC coefficients")
    _check_size(len(coefficients), num_features, stage)
    return LinearSVCStage(coefficients, float(row["intercept"]), float(stage.params.get("threshold", 0.0)))


def _random_forest(stage: StageInfo, num_features: int) -> RandomForestStage:
    _no_thresholds(stage)
    num_classes = int(stage.metadata.get("numClasses", 0))
    if num_classes != 2:
        raise UnsupportedModelError(f"only binary random forests are supported (numClasses={num_classes})")
    _check_size(int(stage.metadata.get("numFeatures", num_features)), num_features, stage)
    by_tree: dict[int, dict[int, dict[str, Any]]] = {}
    for row in _read_data(stage):
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
    meta = _read_metadata(root)
    if meta.get("class") != SPARK_ML + "PipelineModel":
        raise UnsupportedModelError(f"{root} holds a {meta.get('class')}, not a Spark PipelineModel")
    uids = list((meta.get("paramMap") or {}).get("stageUids") or [])
    stages = []
    for i, uid in enumerate(uids):
        folder = root / "stages" / f"{i}_{uid}"
        if not folder.is_dir():
            raise UnsupportedModelError(f"stage folder {folder.name} missing under {root / 'stages'}")
        stages.append(_stage_info(i, folder))
    found = [s.class_name.removeprefix(SPARK_ML) for s in stages]
    bigrams = tuple(found[:-1]) == EXPECTED_STAGES_BIGRAMS
    if not (tuple(found[:-1]) == EXPECTED_STAGES or bigrams) or found[-1] not in CLASSIFIERS:
        unknown = [c for c in found if c not in EXPECTED_STAGES_BIGRAMS and c not in CLASSIFIERS]
        raise UnsupportedModelError(
            "unsupported pipeline: expected stages "
            f"{' -> '.join(s.split('.')[-1] for s in EXPECTED_STAGES)} [with NGram -> SQLTransformer before "
            "HashingTF] -> one of "
            f"{sorted(c.split('.')[-1] for c in CLASSIFIERS)}, found {' -> '.join(c.split('.')[-1] for c in found)}"
            + (f" (unknown stage types: {', '.join(unknown)})" if unknown else "")
        )
    cleaner = _sql_stage(stages[0])
    _check_wiring(stages)
    if bigrams:
        _terms_stage(stages[3], stages[4])
    hashing = _hashing_stage(stages[-3])
    n = hashing.num_features
    return SparkFreeModel(
        tokenizer=_tokenizer_stage(stages[1]),
        stop_words=_stop_words_stage(stages[2]),
        hashing=hashing,
        idf=_idf_stage(stages[-2], n),
        classifier=_classifier(found[-1], stages[-1], n),
        spark_version=str(meta.get("sparkVersion", "")),
        source=source or str(root),
        cleaner=cleaner,
        bigrams=bigrams,
    )


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
            artifact_uri=model_uri, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=tracking_uri
        )
        return load_local(local, source=model_uri)
