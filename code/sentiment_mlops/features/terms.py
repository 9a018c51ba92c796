"""Word bigrams joined to the unigrams: the terms HashingTF hashes, defined for Spark and Python.

Spark side (built in training/model_catalog.py, so this module never imports pyspark): an
`NGram(n=2)` stage over the filtered tokens, then a SQLTransformer running :func:`terms_sql`, which
appends the bigrams to the unigrams (`concat`). Python side: :func:`ngrams` and :func:`terms` reproduce
both exactly (NGram joins each window of n tokens with one space and yields nothing for fewer
than n tokens; concat keeps the order: unigrams, then bigrams). Bigrams carry "not neg_good",
"can't neg_wait", "so happy": on the 100k sample they helped both the random and the
held-out-topic split (bench/train.py, README "Model quality").
"""

from __future__ import annotations

FILTERED_TOKENS_COL = "filtered_tokens"
BIGRAMS_COL = "bigrams"
TERMS_COL = "terms"
NGRAM_N = 2


def terms_sql(unigrams_col: str = FILTERED_TOKENS_COL, bigrams_col: str = BIGRAMS_COL, out: str = TERMS_COL) -> str:
    """The SQLTransformer statement that appends the bigrams to the unigrams."""
    return f"SELECT *, concat(`{unigrams_col}`, `{bigrams_col}`) AS `{out}` FROM __THIS__"


def ngrams(tokens: list[str], n: int = NGRAM_N) -> list[str]:
    """Spark's NGram: every window of n tokens joined by one space; [] for fewer than n tokens."""
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def terms(tokens: list[str], n: int = NGRAM_N) -> list[str]:
    """Python twin of the NGram + terms_sql() stages: the unigrams then their n-grams."""
    return [*tokens, *ngrams(tokens, n)]
