"""Pure helpers of the reporter: percent, ETA, rate-limit timing, merge-patch coalescing, log lines."""

from __future__ import annotations

import math

import pytest

from tuneforge.reporting.progress import (
    eta_seconds,
    finite,
    format_duration,
    merge_patch,
    percent,
    progress_line,
    rfc3339,
    seconds_until_due,
)


@pytest.mark.parametrize(
    ("step", "total", "expected"),
    [(0, 60, 0), (10, 60, 16), (30, 60, 50), (60, 60, 100), (75, 60, 100), (5, None, 0), (5, 0, 0)],
)
def test_percent(step: int, total: int | None, expected: int) -> None:
    assert percent(step, total) == expected


def test_eta_uses_the_mean_pace_so_far() -> None:
    assert eta_seconds(10, 60, 20.0) == 100
    assert eta_seconds(60, 60, 99.0) == 0
    assert eta_seconds(0, 60, 5.0) is None  # no pace before the first step
    assert eta_seconds(10, None, 5.0) is None
    assert eta_seconds(10, 60, -1.0) is None


def test_seconds_until_due() -> None:
    assert seconds_until_due(100.0, None, 5.0) == 0.0
    assert seconds_until_due(101.0, 100.0, 5.0) == 4.0
    assert seconds_until_due(106.0, 100.0, 5.0) == 0.0


def test_merge_patch_coalesces_like_the_api_server_would_apply_both() -> None:
    first = {"progress": {"step": 1, "loss": 2.0, "message": "training"}, "metrics": {"trainLoss": 2.0}}
    second = {"progress": {"step": 2, "loss": None}, "artifacts": {"adapter": "s3://b/a"}}
    assert merge_patch(first, second) == {
        "progress": {"step": 2, "message": "training"},
        "metrics": {"trainLoss": 2.0},
        "artifacts": {"adapter": "s3://b/a"},
    }
    assert first["progress"]["step"] == 1  # inputs untouched
    assert merge_patch({"a": {"b": 1}}, {"a": [1, 2]}) == {"a": [1, 2]}
    assert merge_patch({"a": 1}, "replaced") == "replaced"


def test_finite() -> None:
    assert finite(None) is None
    assert finite(math.nan) is None and finite(math.inf) is None
    assert finite(3) == 3.0


def test_progress_line() -> None:
    line = progress_line(
        {
            "step": 10,
            "totalSteps": 60,
            "percent": 16,
            "epoch": 0.5,
            "totalEpochs": 3.0,
            "loss": 2.3142,
            "tokensPerSecond": 1834.4,
            "etaSeconds": 125,
            "message": "training",
        }
    )
    assert line == "step=10/60 percent=16 epoch=0.50/3 loss=2.314 tokens/s=1834 eta=2m05s message='training'"
    assert (
        progress_line({"step": 0, "message": "loading the model"}) == "step=0/? message='loading the model'"
    )


def test_durations_and_times() -> None:
    assert [format_duration(s) for s in (12, 125, 7260)] == ["12s", "2m05s", "2h01m"]
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
