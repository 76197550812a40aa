"""The Reporter with the local sink: status.json kept current, log lines, and a reporter that never raises."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tuneforge.reporting import LocalSink, Reporter, reporter_from_env
from tuneforge.reporting.local import CONSOLE_FLAG


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(reporter: Reporter, step: int, **extra: Any) -> None:
    args: dict[str, Any] = {
        "total_steps": 60,
        "epoch": step / 20,
        "total_epochs": 3.0,
        "loss": 2.0,
        "tokens_per_second": 1500.0,
    }
    args.update(extra)
    reporter.progress(step=step, **args)


def test_status_json_follows_progress_metrics_and_artifacts(tmp_path: Path) -> None:
    clock = Clock()
    reporter = Reporter([LocalSink(tmp_path)], clock=clock, wallclock=lambda: 0.0)
    progress(reporter, 0, message="training")
    clock.now += 20
    progress(reporter, 10, loss=2.31)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status == {
        "progress": {
            "step": 10,
            "totalSteps": 60,
            "epoch": 0.5,
            "totalEpochs": 3.0,
            "percent": 16,
            "etaSeconds": 100,
            "tokensPerSecond": 1500.0,
            "loss": 2.31,
            "message": "",
            "updateTime": "1970-01-01T00:00:00Z",
        }
    }
    reporter.metrics(trainLoss=2.1, evalLoss=2.4, perplexity=11.02, trainSamples=270)
    reporter.artifacts(adapter="s3://bucket/out/adapter")
    reporter.note("uploading the adapter")
    reporter.finish(reason="Succeeded", message="trained 60 steps")
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["metrics"] == {"trainLoss": 2.1, "evalLoss": 2.4, "perplexity": 11.02, "trainSamples": 270}
    assert status["artifacts"] == {"adapter": "s3://bucket/out/adapter"}
    assert status["progress"]["step"] == 10 and status["progress"]["message"] == "Succeeded: trained 60 steps"


def test_eta_counts_from_the_start_of_training_not_from_loading(tmp_path: Path) -> None:
    clock = Clock()
    reporter = Reporter([LocalSink(tmp_path)], clock=clock)
    reporter.note("loading the model")
    clock.now += 300  # slow model load
    progress(reporter, 0)
    clock.now += 10
    progress(reporter, 10)
    assert json.loads((tmp_path / "status.json").read_text())["progress"]["etaSeconds"] == 50


def test_plain_log_lines_when_not_on_a_terminal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reporter = Reporter([LocalSink(tmp_path)])
    with caplog.at_level(logging.INFO, logger="tuneforge.progress"):
        progress(reporter, 10, loss=2.31, message="training")
        progress(reporter, 10, loss=2.31, message="training")  # unchanged: logged once
        reporter.metrics(trainLoss=1.0)  # no progress change: no line
    lines = [r.getMessage() for r in caplog.records if r.name == "tuneforge.progress"]
    assert len(lines) == 1
    assert lines[0].startswith("step=10/60 percent=16 epoch=0.50/3 loss=2.31 tokens/s=1500")


def test_a_progress_bar_on_a_terminal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    terminal = io.StringIO()
    reporter = Reporter([LocalSink(tmp_path, terminal=terminal)])
    with caplog.at_level(logging.INFO, logger="tuneforge.progress"):
        progress(reporter, 10, loss=2.31)
        progress(reporter, 60, loss=1.5)
        reporter.finish(reason="Succeeded", message="done")
    drawn = terminal.getvalue()
    assert "60/60" in drawn and "loss 1.5" in drawn
    # The lines still reach log files, marked to stay off the console the bar is drawn on.
    records = [r for r in caplog.records if r.name == "tuneforge.progress"]
    assert records and all(getattr(r, CONSOLE_FLAG) is False for r in records)


def test_odd_values_are_cleaned_and_bad_calls_never_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = Reporter([LocalSink(tmp_path)])
    progress(
        reporter, -3, loss=float("nan"), tokens_per_second=float("inf"), total_steps=0, message="x" * 5000
    )
    block = json.loads((tmp_path / "status.json").read_text())["progress"]
    assert block["step"] == 0 and "loss" not in block and "tokensPerSecond" not in block
    assert "totalSteps" not in block and len(block["message"]) == 1024
    with caplog.at_level(logging.ERROR):
        reporter.metrics(notAMetric=1.0)
        reporter.artifacts(adapter=123)  # type: ignore[arg-type]
    assert "reporting metrics failed" in caplog.text and "reporting artifacts failed" in caplog.text
    reporter.metrics(evalLoss=float("nan"), trainLoss=1.0)
    assert json.loads((tmp_path / "status.json").read_text())["metrics"] == {"trainLoss": 1.0}


def test_a_failing_sink_never_fails_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def update(self, patch: dict[str, Any], *, force: bool = False) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            raise OSError("disk full")

    good = LocalSink(tmp_path)
    reporter = Reporter([Broken(), good])
    with caplog.at_level(logging.ERROR):
        progress(reporter, 1)
        reporter.finish(reason="Failed", message="boom")
        reporter.finish(reason="Failed", message="again")  # a second finish is a no-op
    assert good.status["progress"]["message"] == "Failed: boom"
    assert "the Broken failed" in caplog.text and "closing the Broken failed" in caplog.text


def test_local_sink_is_chosen_outside_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    reporter = reporter_from_env("ns", "job", tmp_path)
    assert [type(s).__name__ for s in reporter.sinks] == ["LocalSink"]
