"""Behavioural checks of the model trained on the 100k sample, as the online server serves it.

Small lists with the label a reader would give. Each list must be mostly right (a linear bag of
words cannot get every phrasing); invariances must hold exactly. The hand-written out-of-domain
set (tests/model/data/ood_sanity.tsv) is a proxy for the hidden hand-labelled set, not a substitute.
"""

from __future__ import annotations

import pytest

from sentiment_mlops.online.model import SparkFreeModel
from tests.model.conftest import sanity_rows

pytestmark = pytest.mark.integration

NEGATIONS = [
    ("this movie is not good", 0),
    ("i don't like it at all", 0),
    ("i'm not happy with the service", 0),
    ("the new phone is not worth it", 0),
    ("not bad at all, i enjoyed it", 1),
    ("i can't wait for the weekend", 1),
    ("never been this happy", 1),
    ("it doesn't work and nobody helps", 0),
]
INTENSIFIERS = [
    ("i am so happy today", 1),
    ("really really great news", 1),
    ("extremely disappointed with this", 0),
    ("so sad and tired", 0),
    ("absolutely love it", 1),
    ("totally awful experience", 0),
]
CONTRASTS = [
    ("it was expensive but totally worth it, love it", 1),
    ("i wanted to love it but it was awful", 0),
    ("the start was slow but the ending was amazing", 1),
    ("looks nice but it broke after one day, terrible", 0),
]
# Cases the issue reported as called positive.
REPORTED = [("worst day ever", 0), ("meh it's fine i guess, kind of boring", 0)]


def _share_right(model: SparkFreeModel, cases: list[tuple[str, int]]) -> tuple[float, list[str]]:
    wrong = [text for text, label in cases if model.predict_one(text).label != label]
    return 1 - len(wrong) / len(cases), wrong


@pytest.mark.parametrize(
    ("name", "cases", "least"),
    [
        # Issue 16: 5 of 8 until the negated stop words ("neg_for", "neg_the") left the features;
        # "never been this happy" is still read as negative.
        ("negations", NEGATIONS, 0.75),
        ("intensifiers", INTENSIFIERS, 0.8),
        ("contrasts", CONTRASTS, 0.75),
    ],
)
def test_mostly_right(sample_model: SparkFreeModel, name: str, cases: list[tuple[str, int]], least: float) -> None:
    share, wrong = _share_right(sample_model, cases)
    assert share >= least, f"{name}: {share:.0%} right, wrong on {wrong}"


def test_reported_cases_are_negative(sample_model: SparkFreeModel) -> None:
    assert [sample_model.predict_one(t).label for t, _ in REPORTED] == [label for _, label in REPORTED]


def test_negation_flips_the_margin(sample_model: SparkFreeModel) -> None:
    for plain, negated in [("good", "not good"), ("i like it", "i don't like it"), ("happy", "not happy")]:
        assert sample_model.predict_one(negated).raw_prediction[1] < sample_model.predict_one(plain).raw_prediction[1]


# Everyday sentences with an emoticon added. The sample had its emoticons stripped, so an emoticon
# counts only through the cleaning rules' markers and the lexicon's valence for them (rules v3 with
# --lexicon, the recommended features this model has): a smiley must raise P(positive) and a frown
# lower it. Smileys mostly decide; frowns move the margin far less (about 0.06 against 0.44 on the
# sample's model: the weight learned for the lexicon's medium-negative count is small), so they are
# not asked to decide (README "Model quality").
EMOTICON_BASES = ["on my way to work", "the meeting moved to thursday", "just got home", "reading the news"]
HAPPY, SAD = (":)", ":-)", ":D", "<3"), (":(", ":-(", ":'(")


def test_emoticons_move_the_score_and_smileys_mostly_decide(sample_model: SparkFreeModel) -> None:
    def positive(text: str) -> float:
        return sample_model.predict_one(text).raw_prediction[1]

    for base in EMOTICON_BASES:
        plain = positive(base)
        for sad in SAD:
            assert positive(f"{base} {sad}") < plain, f"{base} {sad}"
        for happy in HAPPY:
            assert positive(f"{base} {happy}") > plain, f"{base} {happy}"
    share, wrong = _share_right(sample_model, [(f"{b} {e}", 1) for b in EMOTICON_BASES for e in HAPPY])
    assert share >= 0.75, f"{share:.0%} right, wrong on {wrong}"


def test_invariant_to_user_names_and_urls(sample_model: SparkFreeModel) -> None:
    for text in ["love this song", "worst traffic ever", "not sure about this"]:
        base = sample_model.predict_one(text)
        for variant in [f"@someone {text}", f"{text} http://t.co/x1y2", f"@a @b {text} www.example.org/page"]:
            assert sample_model.predict_one(variant) == base, variant


def test_hand_written_out_of_domain_set(sample_model: SparkFreeModel) -> None:
    rows = sanity_rows()
    assert 100 <= len(rows) <= 200 and {label for label, _ in rows} == {0, 1}
    right = sum(sample_model.predict_one(text).label == label for label, text in rows)
    assert right / len(rows) >= 0.85, f"{right}/{len(rows)}"
