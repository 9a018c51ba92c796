"""Tweet text cleaning, defined once and applied two ways.

The rules become a Spark SQL statement (:func:`cleaning_sql`), which training wraps in a
`SQLTransformer` stage inside the saved PipelineModel, so serving applies exactly what training
applied without importing Python code on the executors. The same rules run in pure Python
(:func:`clean_text`) for the Spark-free online server; the patterns use only syntax that Java and
Python regexes read the same way (no \\b: Java's is not ASCII-only). This module never imports
pyspark: the online server imports it.

Three versions exist, and models saved with any of them stay servable: the Spark-free loader
finds the version whose SQL equals the saved statement (:func:`cleaner_for_sql`). v2 adds negation
scope marking to v1: "not good" and "don't really like it" become "not neg_good",
"don't neg_really neg_like neg_it", up to three words and never across punctuation, so "not good"
no longer shares a feature with "good". v3 adds marker tokens for words in capitals, emoticons,
elongated words and "!!" / "?!" (README "Model quality"). `CLEANING_RULES` is the training default.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

RAW_TEXT_COL = "text"
CLEAN_TEXT_COL = "clean_text"
NEGATION_PREFIX = "neg_"
NEGATION_SCOPE_WORDS = 3
# What the training pipeline's RegexTokenizer keeps of the cleaned text (words, ! and ?); the drift
# profiles tokenize with it too, so their token counts are the model's. "_" belongs to words since
# cleaning v2 marks negated words as neg_word.
TOKEN_PATTERN = "[a-z0-9_']+|[!?]"

Rules = tuple[tuple[str, str, str], ...]

_ENTITIES: Rules = (
    ("&amp;", " and ", "HTML entity left by the Twitter API"),
    ("&quot;", '"', "HTML entity"),
    ("&lt;", "<", "HTML entity"),
    ("&gt;", ">", "HTML entity"),
    ("&#39;|&apos;", "'", "HTML entity"),
    ("(https?://|www\\.)\\S+", " ", "URLs carry no sentiment and explode the vocabulary"),
    ("@\\w+", " ", "user mentions"),
)

# (regex, replacement, why). Text is lower-cased first. Order matters: entities before the
# punctuation rule so "&amp;" is not split. Python compiles these with re.ASCII because Java's
# \w and \s are ASCII-only.
CLEANING_RULES_V1: Rules = (
    *_ENTITIES,
    ("#(\\w+)", "$1", "keep the hashtag word, drop the sign"),
    ("(\\w)\\1{2,}", "$1$1", "sooooo -> soo: collapse letters repeated 3+ times"),
    ("[^a-z0-9'!?\\s]", " ", "punctuation except ! ? and apostrophes (kept: they carry sentiment)"),
    ("\\s+", " ", "collapse whitespace"),
)

_NEGATORS = (
    "not|no|never|cannot|nothing|nobody|nor|[a-z]+n't|dont|cant|wont|isnt|arent|wasnt|didnt|doesnt"
    "|havent|couldnt|shouldnt|wouldnt|aint"
)
# One application marks the next unmarked word after a negator (words separated by whitespace
# only, so punctuation ends the scope); applying it N times marks up to N words. Java's
# replaceAll and Python's sub both scan left to right without overlaps, so they agree.
_NEGATION_RULE = (
    f"(^|[^a-z0-9'_])({_NEGATORS})\\s+((?:{NEGATION_PREFIX}[a-z0-9']+\\s+)*)(?!{NEGATION_PREFIX})([a-z0-9'])",
    f"$1$2 $3{NEGATION_PREFIX}$4",
    "negation scope: the next words after a negator get the neg_ prefix",
)

CLEANING_RULES_V2: Rules = (
    *_ENTITIES,
    ("_", " ", "the underscore is reserved for the neg_ marker"),
    ("#(\\w+)", "$1", "keep the hashtag word, drop the sign"),
    ("(\\w)\\1{2,}", "$1$1", "sooooo -> soo: collapse letters repeated 3+ times"),
    *(_NEGATION_RULE,) * NEGATION_SCOPE_WORDS,
    ("[^a-z0-9'_!?\\s]", " ", "punctuation except ! ? and apostrophes (kept: they carry sentiment)"),
    ("\\s+", " ", "collapse whitespace"),
)

# Rules v3 (issue 16): markers for what the sample's words miss out of domain. Each marker is a
# "zz" token, which the negation scope passes over ("NOT good" -> "not zzcaps neg_good"):
# zzcaps (a word in capitals, seen before lower-casing), zzemopos / zzemoneg (emoticons; the
# sample had its emoticons stripped, so features.lexicon gives them VADER's valence), zzelong
# ("soooo"), zzexcl ("!!") and zzinterro ("?!").
LOWER = ("(?<lower>)", "", "lower-case here: the rules before it see the original case")
MARKER_PREFIX = "zz"
_CAPS_RULE = (
    "(^|\\s)([A-Z][A-Z']{2,})(?=$|[\\s!?.,;:])",
    f"$1$2 {MARKER_PREFIX}caps",
    "a word of 3+ capitals between spaces is shouting (not @NAMES, #TAGS or URLs)",
)
_EMOTICON_RULES: Rules = (
    ("(?:[:;=]'?-?[)\\]dp*]+|<3+|\\^\\^)(?![a-z0-9])", f" {MARKER_PREFIX}emopos ", "happy emoticons"),
    ("(?:[:;=]'?-?[(\\[/|]+|</3)(?![a-z0-9])", f" {MARKER_PREFIX}emoneg ", "sad emoticons"),
)
_ELONGATION_RULE = (
    "([a-z])\\1{2,}([a-z0-9']*)",
    f"$1$1$2 {MARKER_PREFIX}elong",
    "a letter repeated 3+ times is emphasis: collapse it to two, and the marker after the word",
)
_PUNCTUATION_RULES: Rules = (
    ("[!?]*(?:\\?!|!\\?)[!?]*", f" ? {MARKER_PREFIX}interro ", "?! and !? (with any more of them)"),
    ("!{2,}", f" ! {MARKER_PREFIX}excl ", "!! and more: one ! and the marker"),
)
_NEGATION_RULE_V3 = (
    f"(^|[^a-z0-9'_])({_NEGATORS})\\s+((?:(?:{NEGATION_PREFIX}|{MARKER_PREFIX})[a-z0-9']+\\s+)*)"
    f"(?!{NEGATION_PREFIX}|{MARKER_PREFIX})([a-z0-9'])",
    f"$1$2 $3{NEGATION_PREFIX}$4",
    "negation scope as in v2; markers are passed over, not marked",
)


def rules_v3(caps: bool = True, emoticons: bool = True, elongation: bool = True, punctuation: bool = True) -> Rules:
    """Rules v3, or a subset of its markers (bench/levers.py measures each; only the full set has a
    Spark-free twin)."""
    return (
        *((_CAPS_RULE,) if caps else ()),
        LOWER,
        *_ENTITIES,
        *(_EMOTICON_RULES if emoticons else ()),
        ("_", " ", "the underscore is reserved for the neg_ marker"),
        ("#(\\w+)", "$1", "keep the hashtag word, drop the sign"),
        *((_ELONGATION_RULE,) if elongation else ()),
        ("(\\w)\\1{2,}", "$1$1", "sooooo -> soo: collapse letters repeated 3+ times"),
        *(_PUNCTUATION_RULES if punctuation else ()),
        *(_NEGATION_RULE_V3,) * NEGATION_SCOPE_WORDS,
        ("[^a-z0-9'_!?\\s]", " ", "punctuation except ! ? and apostrophes (kept: they carry sentiment)"),
        ("\\s+", " ", "collapse whitespace"),
    )


CLEANING_RULES_V3: Rules = rules_v3()
RULE_VERSIONS: dict[str, Rules] = {"v1": CLEANING_RULES_V1, "v2": CLEANING_RULES_V2, "v3": CLEANING_RULES_V3}
DEFAULT_RULE_VERSION = "v2"  # the training job's default --cleaning-rules (README "Model quality": v3 is better)
CLEANING_RULES = RULE_VERSIONS[DEFAULT_RULE_VERSION]


def _sql_literal(value: str) -> str:
    # Spark SQL string literals: backslashes and single quotes are escaped with a backslash.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cleaning_sql(input_col: str = RAW_TEXT_COL, output_col: str = CLEAN_TEXT_COL, rules: Rules = CLEANING_RULES) -> str:
    """The `SQLTransformer` statement applying `rules` (default: the current version) to `input_col`."""
    return f"SELECT *, {cleaning_expr(input_col, rules)} AS `{output_col}` FROM __THIS__"


def cleaning_expr(input_col: str = RAW_TEXT_COL, rules: Rules = CLEANING_RULES) -> str:
    """The Spark SQL expression that cleans `input_col` with `rules` (lower-cased first, or at the
    LOWER rule when there is one)."""
    expr = f"coalesce(`{input_col}`, '')" if LOWER in rules else f"lower(coalesce(`{input_col}`, ''))"
    for rule in rules:
        pattern, replacement, _why = rule
        if rule == LOWER:
            expr = f"lower({expr})"
            continue
        expr = f"regexp_replace({expr}, {_sql_literal(pattern)}, {_sql_literal(replacement)})"
    return f"trim({expr})"


def _compile(rules: Rules) -> tuple[tuple[re.Pattern[str] | None, str], ...]:
    """Each rule as (compiled pattern, Python replacement); (None, "") is the LOWER step."""
    steps = tuple(
        (None if rule == LOWER else re.compile(rule[0], re.ASCII), re.sub(r"\$(\d)", r"\\\1", rule[1]))
        for rule in rules
    )
    return steps if LOWER in rules else ((None, ""), *steps)


_COMPILED = {rules: _compile(rules) for rules in RULE_VERSIONS.values()}


def clean_text(text: str | None, rules: Rules = CLEANING_RULES) -> str:
    """Pure-Python twin of :func:`cleaning_sql` with the same `rules` (same rules, same order)."""
    out = text or ""
    for pattern, replacement in _COMPILED[rules]:
        out = out.lower() if pattern is None else pattern.sub(replacement, out)
    return out.strip()


def cleaner_for_sql(statement: str) -> Callable[[str | None], str] | None:
    """The Python twin of a saved cleaning statement, or None when no known rule version made it."""
    for rules in (CLEANING_RULES_V3, CLEANING_RULES_V2, CLEANING_RULES_V1):
        if statement == cleaning_sql(RAW_TEXT_COL, CLEAN_TEXT_COL, rules):
            return functools.partial(clean_text, rules=rules)
    return None
