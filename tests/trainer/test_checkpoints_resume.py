"""Exact resume: a run stopped by SIGTERM and resumed equals a run never stopped.

``tuneforge train`` runs as real subprocesses on the tiny model with the same spec:
once straight through, once stopped by SIGTERM mid-way (it saves and uploads a
checkpoint, exits 143 with reason Preempted) and started again (it resumes). The
data is 20 records in batches of 4, so 12 steps cross two epoch boundaries and the
stop lands mid-epoch; LoRA dropout is on, so the RNG state matters.

Tolerance: none. The adapters must be bitwise equal. Both runs execute the same
CPU kernels on the same thread count, and everything a resume restores comes back
bit for bit (fp32 safetensors weights, torch-saved optimizer and scheduler state,
the Python/NumPy/torch RNG states, the sampler's epoch seed and position), so any
difference means some state was lost. (Across machines or on GPUs with
non-deterministic kernels equality would hold only to rounding.)

Which samples each step trained on is observed with TUNEFORGE_SAMPLE_LOG (each
process logs, per optimizer step, the dataset rows its batches held): the two
attempts together must train exactly the uninterrupted sequence, no step twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tuneforge import exitcodes
from tuneforge.storage import MANIFEST_NAME
from tuneforge.trainer.samplelog import read_sample_log

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
RECORDS, BATCH, STEPS, INTERVAL, KEEP = 20, 4, 12, 4, 2
STEPS_PER_EPOCH = RECORDS // BATCH


@dataclass
class Attempt:
    process: subprocess.Popen[bytes]
    workdir: Path
    termination: Path

    @property
    def message(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.termination.read_text())
        return result

    def steps_done(self) -> int:
        try:
            return len((self.workdir / "samples.jsonl").read_text().splitlines())
        except OSError:
            return 0


@pytest.fixture
def launch(tmp_path: Path, tiny_model: Path):
    """``launch(name, output)`` starts ``tuneforge train`` on 20 alpaca records with checkpoints."""
    data = tmp_path / "data.jsonl"
    lines = (EXAMPLES / "alpaca-sample.jsonl").read_text().splitlines()[:RECORDS]
    data.write_text("\n".join(lines) + "\n")
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, output: Path) -> Attempt:
        base = tmp_path / name
        base.mkdir()
        spec = {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "resume", "namespace": "tests", "uid": f"uid-{name}"},
            "spec": {
                "model": {"source": "s3://models/tiny"},
                "dataset": {"source": "s3://datasets/data.jsonl"},
                "output": {"uri": output.as_uri()},
                "checkpoints": {"intervalSteps": INTERVAL, "keep": KEEP},
                "hyperparameters": {
                    "maxSteps": STEPS,
                    "batchSize": BATCH,
                    "maxSeqLength": 64,
                    "loggingSteps": 1,
                    "learningRate": 5e-3,
                    "loraDropout": 0.1,
                },
            },
        }
        (base / "spec.yaml").write_text(yaml.safe_dump(spec))
        termination = base / "termination-log"
        env = {
            **os.environ,
            "TUNEFORGE_TERMINATION_MESSAGE_PATH": str(termination),
            "TUNEFORGE_SAMPLE_LOG": "1",
        }
        env.pop("KUBERNETES_SERVICE_HOST", None)
        argv = ["train", "--spec", str(base / "spec.yaml"), "--model", str(tiny_model)]
        argv += ["--dataset", str(data), "--workdir", str(base / "work")]
        with (base / "output.log").open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "tuneforge"), *argv],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return Attempt(process, base / "work", termination)

    yield start
    for process in started:
        process.kill()
        process.wait()


def adapter(output: Path) -> dict[str, torch.Tensor]:
    return load_file(output / "adapter" / "adapter_model.safetensors")


def sample_logs(output: Path) -> list[list[tuple[int, list[int]]]]:
    """Each attempt's sample log from the run record, in the order the attempts ran."""
    files = sorted((output / "run" / "samples").glob("*.jsonl"))
    return [read_sample_log(f.read_text()) for f in files]


def stored_checkpoints(output: Path) -> dict[int, bool]:
    root = output / "checkpoints"
    return {int(d.name.split("-")[1]): (d / MANIFEST_NAME).exists() for d in root.iterdir() if d.is_dir()}


def plant_half_upload(output: Path, source_step: int, step: int) -> None:
    """A checkpoint whose upload died part-way: some files, no optimizer, no manifest."""
    source = output / "checkpoints" / f"checkpoint-{source_step}"
    target = output / "checkpoints" / f"checkpoint-{step}"
    target.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json", "trainer_state.json"):
        shutil.copy(source / name, target / name)


def test_a_preempted_run_resumes_to_the_same_adapter_and_trains_no_sample_twice(
    launch, tmp_path: Path
) -> None:
    straight, stopped = tmp_path / "out-straight", tmp_path / "out-stopped"
    reference = launch("straight", straight)

    first = launch("first", stopped)
    deadline = time.monotonic() + 240
    while first.steps_done() < 6:  # into the second epoch: resuming must reseed its shuffle
        assert first.process.poll() is None, (tmp_path / "first" / "output.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.02)
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=120) == exitcodes.PREEMPTED == 143
    said = first.message
    assert said["reason"] == "Preempted", said
    step = said["checkpoint"]["step"]
    assert 6 <= step < STEPS - 1, f"the signal came too late to test a resume (stopped at {step})"
    assert said["checkpoint"]["uri"] == (stopped / "checkpoints" / f"checkpoint-{step}").as_uri()
    assert f"at step {step} of {STEPS}" in said["message"] and "resumes from it" in said["message"]
    assert stored_checkpoints(stopped)[step] is True
    assert json.loads((stopped / "run" / "status.json").read_text())["reason"] == "Preempted"
    plant_half_upload(stopped, step, STEPS - 1)

    second = launch("second", stopped)
    assert second.process.wait(timeout=300) == 0, (tmp_path / "second" / "output.log").read_text()[-3000:]
    assert reference.process.wait(timeout=300) == 0, (tmp_path / "straight" / "output.log").read_text()[
        -3000:
    ]
    assert second.message["reason"] == "Succeeded"

    # The same adapter, to the bit.
    ours, theirs = adapter(stopped), adapter(straight)
    assert ours.keys() == theirs.keys() and len(ours) > 0
    different = [name for name in ours if not torch.equal(ours[name], theirs[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"
    # And the same loss at every step (the resumed run keeps the history it restored).
    losses = [
        [
            e["loss"]
            for e in map(json.loads, (out / "run" / "metrics.jsonl").read_text().splitlines())
            if "loss" in e
        ]
        for out in (stopped, straight)
    ]
    assert losses[0] == losses[1] and len(losses[0]) == STEPS

    # Each step's samples: the two attempts together are the uninterrupted sequence.
    [uninterrupted] = sample_logs(straight)
    before, after = sample_logs(stopped)
    assert [s for s, _ in before] == list(range(1, step + 1))
    assert [s for s, _ in after] == list(range(step + 1, STEPS + 1)), "a step was trained twice or skipped"
    assert before + after == uninterrupted
    rows = [r for _, batch in uninterrupted for r in batch]
    assert len(rows) == STEPS * BATCH and -1 not in rows
    for epoch in range(0, STEPS, STEPS_PER_EPOCH):  # every epoch a fresh permutation: no row twice within one
        seen = [r for s, batch in uninterrupted if epoch < s <= epoch + STEPS_PER_EPOCH for r in batch]
        assert len(seen) == len(set(seen))
    assert sorted(r for _, b in uninterrupted[:STEPS_PER_EPOCH] for r in b) == list(range(RECORDS))

    # The resumed attempt skipped the half upload and said where it resumed from.
    log = (stopped / "run" / "train.log").read_text()
    assert f"skipping checkpoint-{STEPS - 1}" in log and "no _MANIFEST.json" in log
    assert f"resumed from step {step}" in log
    # keep=2: the newest two complete checkpoints; the half upload and older ones are gone.
    assert stored_checkpoints(stopped) == {8: True, 12: True}
