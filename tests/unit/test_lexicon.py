"""The lexicon features read VADER's packaged lexicon (no download) and put words where a reader would."""

from __future__ import annotations

from sentiment_mlops.features import lexicon


def _bucket(word: str) -> str | None:
    return next((name for name, words in lexicon.bucket_words() if word in words), None)


def test_words_land_in_the_bucket_a_reader_expects() -> None:
    assert _bucket("delicious") == "pos_strong" and _bucket("good") == "pos_medium"
    assert _bucket("hate") == "neg_strong" and _bucket("awful") == "neg_medium" and _bucket("boring") == "neg_weak"
    assert _bucket("table") is None  # neutral words are in no bucket


def test_negated_words_and_emoticon_markers() -> None:
    # text_cleaning marks "not good" as "not neg_good": VADER's negation keeps 74% of the valence, reversed.
    assert lexicon.valences()["neg_good"] == round(lexicon.valences()["good"] * lexicon.NEGATED_FACTOR, 4) < 0
    assert _bucket("neg_good") == "neg_weak" and _bucket("neg_hate") == "pos_medium"
    assert _bucket("zzemopos") == "pos_medium" and _bucket("zzemoneg") == "neg_medium"


def test_every_bucket_is_filled_and_disjoint() -> None:
    buckets = lexicon.bucket_words()
    assert [name for name, _ in buckets] == [name for name, _, _ in lexicon.BUCKETS]
    all_words = [w for _, words in buckets for w in words]
    assert len(all_words) == len(set(all_words)) > 10_000 and all(words for _, words in buckets)


def test_counts_statement_names_each_column() -> None:
    sql = lexicon.counts_sql("filtered_tokens", ["r0", "r1"], ["lex_a", "lex_b"])
    assert sql == (
        "SELECT *, CAST(size(`filtered_tokens`) - size(`r0`) AS DOUBLE) AS `lex_a`, "
        "CAST(size(`filtered_tokens`) - size(`r1`) AS DOUBLE) AS `lex_b` FROM __THIS__"
    )
