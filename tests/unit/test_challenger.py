"""The shadow challenger's numbers and promotion verdict (monitoring.challenger) at their boundaries, and
how users turn it on and off (the alias setting, the job flag, the Variables). Pure functions."""

from __future__ import annotations

import pandas as pd
import pytest

from sentiment_mlops.core.errors import ConfigError
from sentiment_mlops.jobs.arguments import serving_args
from sentiment_mlops.monitoring.challenger import Comparison, compare, promotion_decision
from sentiment_mlops.orchestration.config import load_airflow_config
from sentiment_mlops.orchestration.monitoring_config import MonitoringConfig, load_monitoring_config
from sentiment_mlops.registry.lookups import challenger_alias
from sentiment_mlops.registry.promotion import decide
from sentiment_mlops.serving import job as serving_job


def _window(
    served: list[int], challenger: list[int | None], labels: list[int | None], version: str = "2"
) -> pd.DataFrame:
    n = len(served)
    return pd.DataFrame(
        {
            "text": ["t"] * n,
            "label": pd.array(labels, dtype="Int64"),
            "prediction": served,
            "model_name": "m",
            "model_version": "1",
            "challenger_prediction": pd.array(challenger, dtype="Int32"),
            "challenger_model_version": [version if c is not None else None for c in challenger],
        }
    )


def test_agreement_and_both_accuracies_are_measured_on_the_same_rows() -> None:
    # 5 rows scored by both (4 agree), 4 of them labelled; one row without a challenger does not count
    window = _window(
        served=[1, 0, 1, 1, 0, 1],
        challenger=[1, 0, 1, 0, 0, None],
        labels=[1, 1, 0, 0, None, 1],
    )
    [c] = compare(window)
    assert (c.model_name, c.served_version, c.challenger_version, c.rows) == ("m", "1", "2", 5)
    assert c.agreement == 0.8 and c.labelled_rows == 4
    assert (c.served_correct, c.challenger_correct) == (1, 2)
    assert (c.served_accuracy, c.challenger_accuracy) == (0.25, 0.5)


def test_no_challenger_columns_or_rows_compare_to_nothing() -> None:
    assert compare(_window([1, 0], [None, None], [1, 0])) == []
    assert compare(_window([1], [1], [1]).drop(columns=["challenger_prediction"])) == []  # files of older jobs
    assert compare(pd.DataFrame()) == []


def _pair(served_correct: int, challenger_correct: int, labelled: int = 500) -> Comparison:
    return Comparison("m", "1", "2", labelled + 10, 0.9, labelled, served_correct, challenger_correct)


def _decide(pairs: list[Comparison], production: str | None = "1", challenger: str | None = "2", **kw):  # type: ignore[no-untyped-def]
    settings = {"auto_promote": True, "min_labelled_rows": 500, "min_accuracy": 0.7, **kw}
    return promotion_decision(pairs, production, challenger, **settings)


def test_a_challenger_better_on_exactly_the_minimum_of_labelled_rows_is_promoted() -> None:
    d = _decide([_pair(400, 401)])
    assert d["promote"] and d["would_promote"]
    assert d["reason"] == "challenger v2: live accuracy 0.8020 > production v1 (0.8000) (500 labelled rows)"
    assert d["gate"]["candidate_accuracy"] == 0.802 and d["comparison"]["labelled_rows"] == 500


def test_one_labelled_row_short_of_the_minimum_is_no_verdict() -> None:
    d = _decide([_pair(400, 450, labelled=499)])
    assert not d["promote"] and not d["would_promote"] and d["gate"] is None
    assert d["reason"] == "499 labelled rows < monitoring_challenger_min_labelled_rows 500"


def test_equal_live_accuracy_keeps_production() -> None:
    d = _decide([_pair(400, 400)])
    assert not d["promote"] and not d["would_promote"]
    assert d["reason"] == (
        "challenger v2: live accuracy 0.8000 only equals production v1 on the same live rows (500 labelled rows)"
    )


def test_worse_or_under_the_floor_keeps_production() -> None:
    assert "is worse than production v1" in _decide([_pair(400, 399)])["reason"]
    # better than production, but under the floor: the gate's minimum
    d = _decide([_pair(300, 340)])
    assert not d["promote"] and "live accuracy 0.6800 is below the minimum 0.7000" in d["reason"]


def test_auto_promotion_off_reports_what_it_would_do() -> None:
    d = _decide([_pair(400, 450)], auto_promote=False)
    assert not d["promote"] and d["would_promote"]
    assert d["reason"].endswith("; monitoring_challenger_auto_promote is off: report only")


def test_only_the_pair_the_registry_names_now_is_judged() -> None:
    stale = Comparison("m", "0", "2", 600, 0.5, 600, 100, 600)  # an earlier production version
    d = _decide([stale])
    assert not d["promote"] and d["reason"] == "no rows scored by production v1 and challenger v2 in the window"
    assert _decide([_pair(400, 450)], challenger=None)["reason"] == "no challenger: the alias names no version"
    assert _decide([_pair(400, 450)], challenger="1")["reason"] == "the challenger is the production version v1"
    assert _decide([_pair(400, 450)], production=None)["reason"] == "no production version to compare with"


def test_the_gate_ties_promote_a_trained_model_but_not_a_strict_challenger() -> None:
    assert decide(0.8, 0.8, "3").promote
    strict = decide(0.8, 0.8, "3", strict=True, measured_on="live")
    assert (
        not strict.promote and strict.reason == "live accuracy 0.8000 only equals production v3 on the same live rows"
    )
    assert decide(0.8001, 0.8, "3", strict=True).promote


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "challenger"), ("", ""), ("none", ""), ("OFF", ""), ("shadow", "shadow"), ("Staging", "staging")],
)
def test_challenger_alias_setting(value: str | None, expected: str) -> None:
    assert challenger_alias(value) == expected


@pytest.mark.parametrize(
    ("value", "served", "message"),
    [("7", "Production", "is a version number"), ("production", "Production", "the served model's own alias")],
)
def test_challenger_alias_bad_settings_are_named(value: str, served: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        challenger_alias(value, served)
    assert challenger_alias("production", "3") == "production"  # a pinned version: production may shadow it


def _serving(**kw: object) -> list[str]:
    base = {"source_type": "file", "input_path": "gs://b-in", "output_path": "gs://b-out", "checkpoint": "gs://c",
            "mlflow_uri": "http://127.0.0.1:5000", "model_name": "m"}  # fmt: skip
    return serving_args(**{**base, **kw})  # type: ignore[arg-type]


def test_the_job_flag_through_the_builder_and_the_parser() -> None:
    assert not [a for a in _serving() if a.startswith("--challenger-alias")]  # the job's default applies
    for given, flag in (("shadow", "--challenger-alias=shadow"), ("", "--challenger-alias=none")):
        args = _serving(challenger_alias=given)
        assert flag in args
        parsed = serving_job.build_arg_parser().parse_args(args)
        serving_job.validate_args(parsed)
        assert parsed.challenger_alias == (given or "")
    parsed = serving_job.build_arg_parser().parse_args(_serving())
    serving_job.validate_args(parsed)
    assert parsed.challenger_alias == "challenger"
    with pytest.raises(ValueError, match="the served model's own alias"):
        _serving(challenger_alias="Production")
    bad = serving_job.build_arg_parser().parse_args([*_serving(), "--challenger-alias=production"])
    with pytest.raises(ValueError, match="the served model's own alias"):
        serving_job.validate_args(bad)


def test_the_variables() -> None:
    assert load_airflow_config({}).serving_challenger_alias == "challenger"
    assert load_airflow_config({"serving_challenger_alias": "none"}).serving_challenger_alias == ""
    with pytest.raises(ConfigError, match="serving_challenger_alias='Production' is invalid"):
        load_airflow_config({"serving_challenger_alias": "Production"})
    defaults = MonitoringConfig()
    assert (defaults.challenger_auto_promote, defaults.challenger_min_labelled_rows) == (False, 500)
    on = load_monitoring_config({"monitoring_challenger_auto_promote": "True",
                                 "monitoring_challenger_min_labelled_rows": "50"})  # fmt: skip
    assert (on.challenger_auto_promote, on.challenger_min_labelled_rows) == (True, 50)
    assert load_monitoring_config({"monitoring_challenger_auto_promote": "off"}).challenger_auto_promote is False
    with pytest.raises(
        ConfigError, match="monitoring_challenger_auto_promote='maybe' is invalid; allowed values: true"
    ):
        load_monitoring_config({"monitoring_challenger_auto_promote": "maybe"})
    with pytest.raises(ConfigError, match="monitoring_challenger_min_labelled_rows='0' is invalid"):
        load_monitoring_config({"monitoring_challenger_min_labelled_rows": "0"})
