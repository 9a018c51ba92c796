"""The pipeline's stages, each a frozen callable with Spark's own arithmetic: feature stages
(tokenizer, stop words, hashing, IDF) and the classifiers that turn a sparse TF-IDF vector into
a :class:`Prediction` (sums in Spark's order, so the same doubles)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sentiment_mlops.online.model.hashing import term_hash

SENTIMENTS = ("negative", "positive")  # label 0 / 1 (Sentiment140 polarity 0 / 4)


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
            i = term_hash(token) % n
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


@dataclass(frozen=True)
class LexiconCountsStage:
    """features.lexicon: per bucket, how many tokens its StopWordsRemover takes out, as doubles
    (`CAST(size(tokens) - size(rest) AS DOUBLE)`)."""

    removers: tuple[StopWordsStage, ...]

    def __post_init__(self) -> None:
        # One dict look-up per token instead of one pass per remover, when that counts the same:
        # case-sensitive removers with disjoint word lists (what features.lexicon builds).
        words = [w for r in self.removers for w in r.stop_words]
        fast = all(r.case_sensitive for r in self.removers) and len(words) == len(set(words))
        index = {w: k for k, r in enumerate(self.removers) for w in r.stop_words} if fast else None
        object.__setattr__(self, "_index", index)

    def __call__(self, tokens: list[str]) -> list[float]:
        index: dict[str, int] | None = self._index  # type: ignore[attr-defined]
        if index is None:
            return [float(len(tokens) - len(remove(tokens))) for remove in self.removers]
        counts = [0] * len(self.removers)
        for token in tokens:
            k = index.get(token)
            if k is not None:
                counts[k] += 1
        return [float(c) for c in counts]


@dataclass(frozen=True)
class ScalingStage:
    """ElementwiseProduct (NB log-count-ratio scaling): each value times its feature's factor; a
    sparse vector keeps its indices, zeros included, as Spark's does."""

    factors: list[float]

    def __call__(self, vector: tuple[list[int], list[float]]) -> tuple[list[int], list[float]]:
        indices, values = vector
        factors = self.factors
        return indices, [v * factors[i] for i, v in zip(indices, values, strict=True)]


def assemble(vector: tuple[list[int], list[float]], size: int, numbers: list[float]) -> tuple[list[int], list[float]]:
    """VectorAssembler of one sparse vector of `size` and some numbers: the vector's entries then the
    numbers at size, size + 1, ...; like Spark's assembler, zero values are left out."""
    indices, values = vector
    out_i = [i for i, v in zip(indices, values, strict=True) if v != 0.0]
    out_v = [v for v in values if v != 0.0]
    for k, number in enumerate(numbers):
        if number != 0.0:
            out_i.append(size + k)
            out_v.append(number)
    return out_i, out_v


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
