"""SIGTERM (preemption, eviction) without spec.checkpoints: a termination message and the disruption code.

With spec.checkpoints the trainer saves and resumes: test_checkpoints_resume.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tuneforge import exitcodes
from tuneforge.trainer.preemption import PreemptionCallback, SigtermState, Terminated

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def test_sigterm_during_training_without_checkpoints_says_the_retry_starts_over(
    tiny_model: Path, tmp_path: Path
) -> None:
    spec = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "tiny", "namespace": "tests"},
        "spec": {
            "model": {"source": "hf://tuneforge/tiny"},
            "dataset": {"source": "s3://datasets/sample.jsonl"},
            "output": {"uri": (tmp_path / "out").as_uri()},
            "hyperparameters": {"maxSteps": 100_000, "loggingSteps": 1, "batchSize": 2, "maxSeqLength": 64},
        },
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    termination, workdir = tmp_path / "termination-log", tmp_path / "work"
    env = {**os.environ, "TUNEFORGE_TERMINATION_MESSAGE_PATH": str(termination)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    argv = ["--spec", str(tmp_path / "spec.yaml"), "--model", str(tiny_model)]
    argv += ["--dataset", str(EXAMPLES / "alpaca-sample.jsonl"), "--workdir", str(workdir)]
    output = tmp_path / "trainer.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tuneforge"), "train", *argv], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 120
        while not _training(workdir / "status.json"):
            assert process.poll() is None, "the trainer ended before training started"
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        # 143 = 128 + SIGTERM: the Job's podFailurePolicy retries it without counting it.
        try:
            status = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the trainer did not stop within 60 s of SIGTERM; its log ends:\n{_tail(output)}")
        assert status == exitcodes.PREEMPTED == 143, _tail(output)
    finally:
        process.kill()
        process.wait()
    message = json.loads(termination.read_text())
    assert message["reason"] == "Preempted"
    assert "SIGTERM" in message["message"] and "spec.checkpoints is not set" in message["message"]
    assert "checkpoint" not in message  # nothing was saved
    status = json.loads((tmp_path / "out" / "run" / "status.json").read_text())
    assert status["reason"] == "Preempted" and status["exitCode"] == 143


def _training(status_file: Path) -> bool:
    try:
        return json.loads(status_file.read_text()).get("progress", {}).get("step", 0) > 0
    except (OSError, ValueError):
        return False


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def test_a_sigterm_whose_exception_was_swallowed_still_stops_training_at_the_next_step() -> None:
    state = SigtermState()
    state.raise_message = "stopped by SIGTERM during training"
    with pytest.raises(Terminated):
        state.handle(signal.SIGTERM, None)  # raised wherever the main thread was ...
    # ... and swallowed there (logging's Handler.emit catches every Exception): the step ends.
    callback, control = PreemptionCallback(state), SimpleNamespace()
    with pytest.raises(Terminated, match="stopped by SIGTERM during training"):
        callback.on_step_end(None, SimpleNamespace(global_step=3), control)


def test_with_checkpoints_a_sigterm_asks_for_a_checkpoint_and_a_stop_at_the_next_step() -> None:
    state = SigtermState()
    state.mode = "defer"
    state.handle(signal.SIGTERM, None)
    callback = PreemptionCallback(state)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    callback.on_step_end(None, SimpleNamespace(global_step=3), control)
    assert control.should_save and control.should_training_stop and callback.stopped_at == 3
