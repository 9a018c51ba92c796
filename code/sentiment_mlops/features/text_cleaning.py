"""Tweet text cleaning, defined once and applied two ways.

The rules become a Spark SQL statement (:func:`cleaning_sql`), which training wraps in a
`SQLTransformer` stage inside the saved PipelineModel, so serving applies exactly what training
applied without importing Python code on the executors. The same rules run in pure Python
(:func:`clean_text`) for the Spark-free online server; the patterns use only syntax that Java and
Python regexes read the same way. This module never imports pyspark: the online server imports it.
"""

from __future__ import annotations

import re

RAW_TEXT_COL = "text"
CLEAN_TEXT_COL = "clean_text"
# What the training pipeline's RegexTokenizer keeps of the cleaned text (words, ! and ?); the drift
# profiles tokenize with it too, so their token counts are the model's.
TOKEN_PATTERN = "[a-z0-9']+|[!?]"

# (regex, replacement, why). Text is lower-cased first. Order matters: entities before the
# punctuation rule so "&amp;" is not split. Python compiles these with re.ASCII because Java's
# \w and \s are ASCII-only.
CLEANING_RULES: tuple[tuple[str, str, str], ...] = (
    ("&amp;", " and ", "HTML entity left by the Twitter API"),
    ("&quot;", '"', "HTML entity"),
    ("&lt;", "<", "HTML entity"),
    ("&gt;", ">", "HTML entity"),
    ("&#39;|&apos;", "'", "HTML entity"),
    ("(https?://|www\\.)\\S+", " ", "URLs carry no sentiment and explode the vocabulary"),
    ("@\\w+", " ", "user mentions"),
    ("#(\\w+)", "$1", "keep the hashtag word, drop the sign"),
    ("(\\w)\\1{2,}", "$1$1", "sooooo -> soo: collapse letters repeated 3+ times"),
    ("[^a-z0-9'!?\\s]", " ", "punctuation except ! ? and apostrophes (kept: they carry sentiment)"),
    ("\\s+", " ", "collapse whitespace"),
)


def _sql_literal(value: str) -> str:
    # Spark SQL string literals: backslashes and single quotes are escaped with a backslash.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cleaning_sql(input_col: str = RAW_TEXT_COL, output_col: str = CLEAN_TEXT_COL) -> str:
    """The `SQLTransformer` statement applying CLEANING_RULES to `input_col` into `output_col`."""
    expr = f"lower(coalesce(`{input_col}`, ''))"
    for pattern, replacement, _why in CLEANING_RULES:
        expr = f"regexp_replace({expr}, {_sql_literal(pattern)}, {_sql_literal(replacement)})"
    return f"SELECT *, trim({expr}) AS `{output_col}` FROM __THIS__"


_PY_RULES = tuple(
    (re.compile(pattern, re.ASCII), re.sub(r"\$(\d)", r"\\\1", replacement))
    for pattern, replacement, _ in CLEANING_RULES
)


def clean_text(text: str | None) -> str:
    """Pure-Python twin of :func:`cleaning_sql` (same rules, same order)."""
    out = (text or "").lower()
    for pattern, replacement in _PY_RULES:
        out = pattern.sub(replacement, out)
    return out.strip()
