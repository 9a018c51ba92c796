"""The promotion gate's rules, and the stage-word to alias mapping users rely on."""

from __future__ import annotations

import pytest

from sentiment_mlops import registry
from sentiment_mlops.promotion import decide


def test_first_model_above_minimum_is_promoted() -> None:
    d = decide(0.78, None, None, min_accuracy=0.75)
    assert d.promote and "no current production" in d.reason


def test_below_minimum_is_kept() -> None:
    d = decide(0.74, None, None, min_accuracy=0.75)
    assert not d.promote and "below the minimum" in d.reason


def test_worse_than_current_is_kept_and_better_is_promoted() -> None:
    assert not decide(0.78, 0.79, "3").promote
    d = decide(0.80, 0.79, "3")
    assert d.promote and "v3" in d.reason


def test_force_overrides_both_rules() -> None:
    d = decide(0.10, 0.90, "1", force=True)
    assert d.promote and d.forced


@pytest.mark.parametrize(
    "value,uri",
    [
        ("Production", "models:/m@production"),
        ("production", "models:/m@production"),
        ("Staging", "models:/m@staging"),
        ("champion", "models:/m@champion"),
        ("7", "models:/m/7"),
    ],
)
def test_model_uri_maps_stage_words_onto_aliases(value: str, uri: str) -> None:
    assert registry.model_uri("m", value) == uri


def test_unreachable_tracking_server_is_one_clear_error() -> None:
    from sentiment_mlops.local_mlflow import free_port

    with pytest.raises(registry.MlflowUnreachableError, match="unreachable"):
        registry.check_tracking_server(f"http://127.0.0.1:{free_port()}", timeout=1)
