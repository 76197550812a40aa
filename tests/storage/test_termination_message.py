"""The termination message helper shared by fetch and the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.termination import ENV, MAX_BYTES, termination_message, write_termination_message


def test_writes_reason_message_and_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "termination-log"
    monkeypatch.setenv(ENV, str(target))
    write_termination_message(
        "Succeeded", "done", metrics={"trainLoss": 1.9}, artifacts={"adapter": "s3://b/a"}
    )
    assert json.loads(target.read_text()) == {
        "reason": "Succeeded",
        "message": "done",
        "metrics": {"trainLoss": 1.9},
        "artifacts": {"adapter": "s3://b/a"},
    }


def test_without_the_variable_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    write_termination_message("NotFound", "gone")
    assert list(tmp_path.iterdir()) == []


def test_a_long_message_is_cut_to_fit_and_stays_valid_json() -> None:
    text = termination_message("DatasetInvalid", "é" * 10_000, metrics={"trainLoss": 1.0})
    assert len(text.encode()) <= MAX_BYTES
    doc = json.loads(text)
    assert doc["reason"] == "DatasetInvalid" and doc["metrics"] == {"trainLoss": 1.0}
    assert doc["message"].endswith("…") and len(doc["message"]) > 1000


def test_huge_extras_are_dropped_before_the_message_is_lost() -> None:
    text = termination_message("Failed", "the real reason", logs="x" * 10_000, metrics={"loss": 2.0})
    doc = json.loads(text)
    assert len(text.encode()) <= MAX_BYTES
    assert doc == {"reason": "Failed", "message": "the real reason", "metrics": {"loss": 2.0}}


def test_an_unwritable_path_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "no-such-dir" / "log"))
    write_termination_message("Failed", "x")
    assert "cannot write the termination message" in capsys.readouterr().err
