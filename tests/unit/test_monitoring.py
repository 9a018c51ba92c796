"""Drift arithmetic, the monitoring Variables and the alert decision: pure functions, no servers."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentiment_mlops.core.errors import ConfigError
from sentiment_mlops.monitoring import profile
from sentiment_mlops.orchestration.monitoring_config import MonitoringConfig, load_monitoring_config
from sentiment_mlops.orchestration.tasks.monitoring import alert_reasons, measure_version

TWEETS = [
    "I love this so much, what a day!",
    "worst service ever, never again",
    "@friend going to the beach http://t.co/x #summer",
    "can't sleep... so tired",
    "Thank you all for the birthday wishes!!",
    "my phone died again ugh",
] * 50


def _frame(texts: list[str], prediction: int | list[int] = 1, label: object = None) -> pd.DataFrame:
    return pd.DataFrame({"text": texts, "prediction": prediction, "label": label})


shares = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=12).filter(lambda xs: sum(xs) > 0)


@given(shares)
def test_psi_of_a_distribution_with_itself_is_zero(xs: list[float]) -> None:
    total = sum(xs)
    dist = [x / total for x in xs]
    assert profile.psi(dist, dist) == 0.0


@given(shares, shares)
def test_psi_is_never_negative_and_symmetric(xs: list[float], ys: list[float]) -> None:
    n = min(len(xs), len(ys))
    a = [x / sum(xs[:n]) if sum(xs[:n]) else 1 / n for x in xs[:n]]
    b = [y / sum(ys[:n]) if sum(ys[:n]) else 1 / n for y in ys[:n]]
    assert profile.psi(a, b) >= 0.0
    assert math.isclose(profile.psi(a, b), profile.psi(b, a), abs_tol=1e-5)


def test_psi_known_value_and_bin_mismatch() -> None:
    # (0.5-0.1)*ln(0.5/0.1) + (0.5-0.9)*ln(0.5/0.9)
    assert profile.psi([0.1, 0.9], [0.5, 0.5]) == pytest.approx(0.4 * math.log(5) - 0.4 * math.log(5 / 9), abs=1e-6)
    with pytest.raises(ValueError, match="bins differ"):
        profile.psi([0.5, 0.5], [1.0])


def test_tokens_follow_the_training_cleaning_and_pattern() -> None:
    assert profile.tokens("@bob Sooooo GOOD!!! http://x.co/y #happy", "v2") == ["soo", "good", "!", "!", "!", "happy"]
    # rules v3: markers for the elongation, the capitals and the "!!!"
    assert profile.tokens("@bob Sooooo GOOD!!! http://x.co/y #happy", "v3") == [
        "soo", "zzelong", "good", "zzcaps", "!", "zzexcl", "happy"
    ]  # fmt: skip
    assert profile.tokens(None) == []


@pytest.mark.parametrize("rules", ["v2", "v3", None])
def test_live_rows_are_tokenized_with_the_rules_of_the_profiles_model(rules: str | None) -> None:
    # Live rows are tokenized with the rules of the profile's model, whatever the default: the same
    # tweets must read as no drift at all. None: a profile saved before profiles named their rules.
    version = rules or "v2"
    ref = profile.reference_profile(
        _frame(TWEETS, [0, 1] * 150), profile.build_vocabulary(TWEETS, rules_version=version), rules_version=version
    )
    if rules is None:
        del ref["cleaning_rules"]
    assert all(d["psi"] == 0.0 for d in profile.drift(ref, _frame(TWEETS, [0, 1] * 150)).values())
    assert ref["features"]["top_terms"]["bins"].count("zzexcl") == (version == "v3")


def test_a_profile_of_unknown_cleaning_rules_is_a_clear_error() -> None:
    ref = profile.reference_profile(_frame(TWEETS, [0, 1] * 150), profile.build_vocabulary(TWEETS))
    ref["cleaning_rules"] = "v9"  # written by a newer release
    with pytest.raises(ValueError, match=r"made with cleaning rules 'v9'; this code knows v1, v2, v3"):
        profile.drift(ref, _frame(TWEETS, [0, 1] * 150))


def test_profile_bins_the_reference_and_a_live_window_the_same_way() -> None:
    vocabulary = profile.build_vocabulary(TWEETS)
    ref = profile.reference_profile(_frame(TWEETS, [0, 1] * 150), vocabulary, model={"run_id": "r1"})
    assert ref["rows"] == 300 and ref["model"] == {"run_id": "r1"} and ref["oov_rate"] == 0.0
    assert ref["features"]["prediction_class"]["fractions"] == [0.5, 0.5]
    for name in profile.FEATURES:
        assert sum(ref["features"][name]["fractions"]) == pytest.approx(1.0, abs=1e-4)
    same = profile.drift(ref, _frame(TWEETS, [0, 1] * 150))
    assert all(d["psi"] == 0.0 for d in same.values())

    shifted = profile.drift(ref, _frame(["totally unseen vocabulary here " * 8] * 100, 1))
    assert shifted["oov"]["actual"] == [0.0, 1.0] and shifted["oov"]["psi"] > 1
    assert shifted["text_length"]["actual"][-1] == 1.0  # all in the longest bin
    assert shifted["prediction_class"]["psi"] > 1  # all positive against half and half


def test_profile_refuses_empty_input_and_unknown_schema() -> None:
    with pytest.raises(ValueError, match="empty"):
        profile.reference_profile(_frame([]), [])
    with pytest.raises(ValueError, match="schema"):
        profile.drift({"schema": 99}, _frame(TWEETS))


def test_live_accuracy_counts_labelled_rows_only() -> None:
    df = pd.DataFrame({"text": ["a", "b", "c", "d"], "prediction": [1, 0, 1, 1], "label": [1, 1, None, 1]})
    assert profile.live_accuracy(df) == (pytest.approx(2 / 3, abs=1e-6), 3)
    assert profile.live_accuracy(df.drop(columns="label")) == (None, 0)
    assert profile.live_accuracy(df.assign(label=None)) == (None, 0)


def test_monitoring_variables_defaults_parsing_and_errors() -> None:
    assert load_monitoring_config({}) == MonitoringConfig()
    cfg = load_monitoring_config(
        {"monitoring_psi_threshold": "0.3", "monitoring_min_rows": "50", "monitoring_pushgateway_url": "pg:9091",
         "monitoring_retrain_dag_id": " ", "monitoring_window_hours": ""}
    )  # fmt: skip
    assert (cfg.psi_threshold, cfg.min_rows, cfg.pushgateway_url) == (0.3, 50, "http://pg:9091")
    assert cfg.retrain_dag_id == "sentiment_ml_training_pipeline" and cfg.window_hours == 24.0  # empty: default
    with pytest.raises(ConfigError) as err:
        load_monitoring_config({"monitoring_accuracy_floor": "1.5", "monitoring_min_rows": "many"})
    assert "monitoring_accuracy_floor='1.5' is invalid; allowed values: a number from 0 to 1" in str(err.value)
    assert "monitoring_min_rows='many' is invalid; allowed values: a whole number" in str(err.value)


def _version(rows: pd.DataFrame, reference: dict | None, mcfg: MonitoringConfig) -> dict:
    return {"model_name": "m", "model_version": "3", **measure_version(rows, reference, mcfg)}


def test_alert_reasons_need_enough_rows_and_a_reference() -> None:
    mcfg = MonitoringConfig(min_rows=100, min_labelled_rows=50, accuracy_floor=0.8)
    ref = profile.reference_profile(_frame(TWEETS, [0, 1] * 150), profile.build_vocabulary(TWEETS))
    drifted = _frame(["buy cheap followers now " * 5] * 120, 1, 0)
    v = _version(drifted, ref, mcfg)
    reasons = alert_reasons([v], mcfg)
    assert reasons[0].startswith("drift on m v3: PSI ") and "oov" in reasons[0]
    assert reasons[1] == "live accuracy of m v3 0.000 < floor 0.8 on 120 labelled rows"

    few = _version(drifted.head(40), ref, mcfg)  # below both minimums: no verdict
    assert few["drift"] is None and "40 rows < monitoring_min_rows 100" in few["drift_skipped"]
    assert alert_reasons([few], mcfg) == []
    unprofiled = _version(drifted, None, mcfg)
    assert unprofiled["reference"] == "missing" and unprofiled["drift"] is None
    assert alert_reasons([unprofiled], mcfg) == [reasons[1]]  # accuracy still judged
    assert alert_reasons([_version(_frame(TWEETS, [0, 1] * 150), ref, mcfg)], mcfg) == []


def test_failure_message_names_dag_run_and_task() -> None:
    from sentiment_mlops.orchestration.notifications import failure_message

    class Dag:
        dag_id = "sentiment_model_monitoring"

    class TI:
        task_id, try_number, log_url = "measure_model", 1, "http://127.0.0.1:8080/log"

    context = {"dag": Dag(), "run_id": "manual__1", "ti": TI(), "exception": RuntimeError("no MLflow\nat all")}
    subject, body = failure_message(context)
    assert subject == "[sentiment-mlops] DAG sentiment_model_monitoring failed"
    assert body.splitlines() == [
        "DAG: sentiment_model_monitoring", "Run: manual__1", "Reason: task failed",
        "Failed task: measure_model (try 1)", "Error: RuntimeError: no MLflow", "Log: http://127.0.0.1:8080/log",
    ]  # fmt: skip
