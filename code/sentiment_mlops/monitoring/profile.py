"""Reference profiles and drift: what a model's inputs and predictions looked like on its test split,
and how far a window of live predictions has moved from that (PSI per feature).

Pure functions over pandas DataFrames with a `text` column (and `prediction`, and for accuracy
`label`): training builds the profile from a sample of its test split and logs it with each model
(`monitoring/reference_profile.json` in the model's MLflow run); the monitoring DAG reads it back and
compares the serving job's Parquet against it. No Spark, no Airflow: both sides import this module.

Every feature of a profile is a distribution over fixed bins, so a live window is binned exactly the
way the reference was:

================  ====================================================================================
prediction_class  share of each predicted class (0 negative, 1 positive)
text_length       characters of the raw text, in bins cut at the reference's deciles
token_count       tokens after cleaning (the training tokenizer's pattern), in decile bins
hashed_tokens     share of all tokens in each of HASH_BUCKETS buckets of a stable hash of the token
top_terms         share of tokens that are each of the reference's most frequent terms, and the rest
oov               share of tokens inside / outside the training split's vocabulary (its top terms)
================  ====================================================================================
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sentiment_mlops.features.text_cleaning import DEFAULT_RULE_VERSION, RULE_VERSIONS, TOKEN_PATTERN, clean_text

PROFILE_SCHEMA = 1
PROFILE_ARTIFACT = "monitoring/reference_profile.json"
FEATURES = ("prediction_class", "text_length", "token_count", "hashed_tokens", "top_terms", "oov")
HASH_BUCKETS = 32
TOP_TERMS = 50
VOCABULARY_SIZE = 5000
NUMERIC_BINS = 10
OTHER_TERMS = "<other>"
# PSI takes the log of each bin's share: an empty bin on either side counts as this share instead
# of making the index infinite (the usual floor).
PSI_FLOOR = 1e-4
# The cleaning rules of a profile saved without the key: every model was trained with v2 until profiles named them.
PROFILE_RULES_BEFORE_KEY = "v2"

_TOKEN_RE = re.compile(TOKEN_PATTERN)


def tokens(text: str | None, rules_version: str = DEFAULT_RULE_VERSION) -> list[str]:
    """The tokens training's pipeline sees: the cleaning rules (the model's version), then the
    tokenizer's pattern."""
    return _TOKEN_RE.findall(clean_text(text, RULE_VERSIONS[rules_version]))


def hash_bucket(token: str, buckets: int = HASH_BUCKETS) -> int:
    """A stable bucket for `token` (CRC-32, the same in every process and Python version). Not
    HashingTF's index: the profile only needs a fixed, coarse partition of the token space."""
    return zlib.crc32(token.encode("utf-8", "replace")) % buckets


def build_vocabulary(
    texts: Iterable[str | None], size: int = VOCABULARY_SIZE, rules_version: str = DEFAULT_RULE_VERSION
) -> list[str]:
    """The `size` most frequent tokens of `texts` (ties by token, so the list is reproducible)."""
    counts = Counter(t for text in texts for t in tokens(text, rules_version))
    return [term for term, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def _fractions(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [round(c / total, 6) if total else 0.0 for c in counts]


def _numeric_edges(values: pd.Series, bins: int = NUMERIC_BINS) -> list[float]:
    """Interior cut points at the quantiles of `values` (duplicates dropped: short tweets pile up)."""
    if values.empty:
        return []
    quantiles = values.quantile([i / bins for i in range(1, bins)]).tolist()
    return sorted({float(q) for q in quantiles})


def _numeric_counts(values: pd.Series, edges: Sequence[float]) -> list[int]:
    """Counts per bin: bin i holds edges[i-1] < v <= edges[i] (the first from -inf, the last to +inf)."""
    counts = [0] * (len(edges) + 1)
    import bisect

    for v in values.tolist():
        counts[bisect.bisect_left(edges, float(v))] += 1
    return counts


def _stats(values: pd.Series) -> dict[str, float | None]:
    if values.empty:
        return {"mean": None, "std": None, "p50": None, "p95": None, "min": None, "max": None}
    return {
        "mean": round(float(values.mean()), 4),
        "std": round(float(values.std(ddof=0)), 4),
        "p50": float(values.quantile(0.5)),
        "p95": float(values.quantile(0.95)),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def _token_lists(df: pd.DataFrame, text_col: str, rules_version: str) -> list[list[str]]:
    return [tokens(t, rules_version) for t in df[text_col].tolist()]


def _term_counts(token_lists: list[list[str]], terms: Sequence[str], vocabulary: frozenset[str]) -> dict[str, list]:
    """Counts per bin of the three token-level features."""
    hashed = [0] * HASH_BUCKETS
    top = dict.fromkeys(terms, 0)
    other = in_vocab = out_vocab = 0
    for toks in token_lists:
        for t in toks:
            hashed[hash_bucket(t)] += 1
            if t in top:
                top[t] += 1
            else:
                other += 1
            if t in vocabulary:
                in_vocab += 1
            else:
                out_vocab += 1
    return {
        "hashed_tokens": hashed,
        "top_terms": [top[t] for t in terms] + [other],
        "oov": [in_vocab, out_vocab],
    }


def _prediction_counts(df: pd.DataFrame, prediction_col: str) -> list[int]:
    predictions = pd.to_numeric(df[prediction_col], errors="coerce").dropna().astype(int)
    return [int((predictions == 0).sum()), int((predictions == 1).sum())]


def reference_profile(
    df: pd.DataFrame,
    vocabulary: Sequence[str],
    *,
    text_col: str = "text",
    prediction_col: str = "prediction",
    model: dict[str, Any] | None = None,
    rules_version: str = DEFAULT_RULE_VERSION,
) -> dict[str, Any]:
    """The profile of a model's predictions `df` (a sample of its test split) as a JSON-ready dict.
    `vocabulary`: the training split's most frequent terms (see build_vocabulary); `model`: what
    the profile describes (name, version, run), stored as given; `rules_version`: the model's
    cleaning rules, stored so that live rows are tokenized the same way."""
    if df.empty:
        raise ValueError("cannot profile an empty DataFrame")
    token_lists = _token_lists(df, text_col, rules_version)
    lengths = df[text_col].fillna("").str.len()
    counts_per_row = pd.Series([len(t) for t in token_lists], dtype="int64")
    all_terms = Counter(t for toks in token_lists for t in toks)
    top = [t for t, _ in sorted(all_terms.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TERMS]]
    term_counts = _term_counts(token_lists, top, frozenset(vocabulary))
    length_edges, token_edges = _numeric_edges(lengths), _numeric_edges(counts_per_row)
    features: dict[str, dict[str, Any]] = {
        "prediction_class": {"bins": ["0", "1"], "fractions": _fractions(_prediction_counts(df, prediction_col))},
        "text_length": {
            "edges": length_edges,
            "fractions": _fractions(_numeric_counts(lengths, length_edges)),
            "stats": _stats(lengths),
        },
        "token_count": {
            "edges": token_edges,
            "fractions": _fractions(_numeric_counts(counts_per_row, token_edges)),
            "stats": _stats(counts_per_row),
        },
        "hashed_tokens": {
            "bins": [str(i) for i in range(HASH_BUCKETS)],
            "fractions": _fractions(term_counts["hashed_tokens"]),
        },
        "top_terms": {"bins": [*top, OTHER_TERMS], "fractions": _fractions(term_counts["top_terms"])},
        "oov": {"bins": ["in_vocabulary", "out_of_vocabulary"], "fractions": _fractions(term_counts["oov"])},
    }
    return {
        "schema": PROFILE_SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": len(df),
        "model": model or {},
        "cleaning_rules": rules_version,
        "oov_rate": features["oov"]["fractions"][1],
        "vocabulary": list(vocabulary),
        "features": features,
    }


def _profile_rules(profile: dict[str, Any]) -> str:
    """The cleaning rule version `profile` was tokenized with; a clear error for one this code lacks."""
    rules = profile.get("cleaning_rules", PROFILE_RULES_BEFORE_KEY)
    if rules not in RULE_VERSIONS:
        known = ", ".join(RULE_VERSIONS)
        raise ValueError(f"reference profile made with cleaning rules {rules!r}; this code knows {known}")
    return str(rules)


def live_fractions(profile: dict[str, Any], df: pd.DataFrame, text_col: str = "text") -> dict[str, list[float]]:
    """The shares of live rows `df` in each bin of each feature of `profile`."""
    features = profile["features"]
    token_lists = _token_lists(df, text_col, _profile_rules(profile))
    lengths = df[text_col].fillna("").str.len()
    counts_per_row = pd.Series([len(t) for t in token_lists], dtype="int64")
    top = features["top_terms"]["bins"][:-1]
    term_counts = _term_counts(token_lists, top, frozenset(profile["vocabulary"]))
    return {
        "prediction_class": _fractions(_prediction_counts(df, "prediction")),
        "text_length": _fractions(_numeric_counts(lengths, features["text_length"]["edges"])),
        "token_count": _fractions(_numeric_counts(counts_per_row, features["token_count"]["edges"])),
        **{name: _fractions(term_counts[name]) for name in ("hashed_tokens", "top_terms", "oov")},
    }


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected).
    Below 0.1 is usually read as stable, 0.1-0.2 as a moderate shift, above 0.2 as a real one."""
    if len(expected) != len(actual):
        raise ValueError(f"bins differ: {len(expected)} expected, {len(actual)} actual")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, floor), max(a, floor)
        total += (a - e) * math.log(a / e)
    return round(total, 6)


def drift(profile: dict[str, Any], df: pd.DataFrame, text_col: str = "text") -> dict[str, dict[str, Any]]:
    """PSI of live rows `df` against `profile`, per feature, with both distributions."""
    if profile.get("schema") != PROFILE_SCHEMA:
        raise ValueError(f"reference profile schema {profile.get('schema')!r}; this code reads {PROFILE_SCHEMA}")
    live = live_fractions(profile, df, text_col)
    out: dict[str, dict[str, Any]] = {}
    for name in FEATURES:
        expected = profile["features"][name]["fractions"]
        out[name] = {"psi": psi(expected, live[name]), "expected": expected, "actual": live[name]}
    return out


def live_accuracy(df: pd.DataFrame) -> tuple[float | None, int]:
    """Accuracy on the rows of `df` that carry a label (0/1), and how many did; None without any."""
    if "label" not in df.columns:
        return None, 0
    labelled = df[df["label"].notna() & df["prediction"].notna()]
    if labelled.empty:
        return None, 0
    correct = int((labelled["label"].astype(int) == labelled["prediction"].astype(int)).sum())
    return round(correct / len(labelled), 6), len(labelled)
