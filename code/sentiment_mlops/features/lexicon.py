"""Sentiment-lexicon features: a prior that does not come from the 100k sample.

The lexicon is VADER's (the `vaderSentiment` PyPI package ships `vader_lexicon.txt`; nothing is
downloaded at run time): about 7,500 words and emoticons rated by people from -4 to +4. A word the
sample never shows (a topic word of the hidden set, "delicious", "spectacular") still counts towards
a shared feature the model has a weight for.

Features: for each strength bucket (:data:`BUCKETS`: weak, medium, strong; positive and negative), how
many of the tweet's filtered tokens are lexicon words of that bucket. A word marked as negated by the
cleaning rules ("neg_good") counts with VADER's own negation factor (valence x -0.74), so "not good"
counts as weakly negative. For a linear model the counts per bucket carry the positive and negative
scores too (a score is a weighted sum of them).

Spark side (built in training/model_catalog.py, so this module never imports pyspark): one
`StopWordsRemover` per bucket, with the bucket's words as its stop words (case-sensitive: the tokens are
already lower case), then a SQLTransformer running :func:`counts_sql`, `size(tokens) - size(tokens
without the bucket's words)`, then a VectorAssembler appending the counts to the TF-IDF vector. All are
hash look-ups, so the stages cost little. Python side (online/model): the same removers read from the
saved model, the same differences, and the assembler's rule (zeros are left out of the sparse vector).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

LEXICON_PACKAGE = "vaderSentiment"
LEXICON_FILE = "vader_lexicon.txt"
NEGATED_FACTOR = -0.74  # vaderSentiment.N_SCALAR: a negated word keeps 74% of its valence, reversed
NEGATION_PREFIX = "neg_"  # the marker of text_cleaning's negation scope
TFIDF_COL = "tfidf"
REST_COL_PREFIX = "lex_rest_"
COUNT_COL_PREFIX = "lex_"
# (name, lowest |valence| included, highest excluded), each for positive and negative words.
_STRENGTHS = (("weak", 0.0, 1.5), ("medium", 1.5, 2.5), ("strong", 2.5, 99.0))
BUCKETS: tuple[tuple[str, float, float], ...] = tuple(
    (f"{sign}_{name}", low, high) for sign in ("pos", "neg") for name, low, high in _STRENGTHS
)
# Cleaning rules v3 turn emoticons into these markers; they take the valence VADER gives ":)" / ":(".
EMOTICON_MARKERS = {"zzemopos": ":)", "zzemoneg": ":("}
_WORD = re.compile(r"[a-z0-9']+")  # what the tokenizer can produce as a word (before the neg_ marker)


@lru_cache(maxsize=1)
def valences() -> dict[str, float]:
    """Word -> mean valence of the packaged VADER lexicon: its words (emoticons cannot survive the
    cleaning rules' punctuation filter), their neg_ forms with the negation factor, and the emoticon
    markers of cleaning rules v3."""
    text = resources.files(LEXICON_PACKAGE).joinpath(LEXICON_FILE).read_text(encoding="utf-8")
    entries: dict[str, float] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            entries[fields[0]] = float(fields[1])
    words = {w: v for w, v in entries.items() if _WORD.fullmatch(w)}
    negated = {f"{NEGATION_PREFIX}{w}": round(v * NEGATED_FACTOR, 4) for w, v in words.items()}
    markers = {marker: entries[emoticon] for marker, emoticon in EMOTICON_MARKERS.items()}
    return {**words, **negated, **markers}


def bucket_of(valence: float) -> str | None:
    """The bucket name of a valence; None for 0."""
    sign = "pos" if valence > 0 else "neg" if valence < 0 else None
    if sign is None:
        return None
    return next(f"{sign}_{name}" for name, low, high in _STRENGTHS if low <= abs(valence) < high)


@lru_cache(maxsize=1)
def bucket_words() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(bucket name, its words sorted) for every bucket of BUCKETS, in that order."""
    members: dict[str, list[str]] = {name: [] for name, _, _ in BUCKETS}
    for word, valence in valences().items():
        bucket = bucket_of(valence)
        if bucket is not None:
            members[bucket].append(word)
    return tuple((name, tuple(sorted(members[name]))) for name, _, _ in BUCKETS)


def rest_col(i: int) -> str:
    return f"{REST_COL_PREFIX}{i}"


def count_col(i: int) -> str:
    return f"{COUNT_COL_PREFIX}{BUCKETS[i][0]}"


def counts_sql(tokens_col: str, rest_cols: list[str], count_cols: list[str]) -> str:
    """The SQLTransformer statement: per bucket, the tokens its remover took out, as a double."""
    parts = [
        f"CAST(size(`{tokens_col}`) - size(`{rest}`) AS DOUBLE) AS `{out}`"
        for rest, out in zip(rest_cols, count_cols, strict=True)
    ]
    return f"SELECT *, {', '.join(parts)} FROM __THIS__"
