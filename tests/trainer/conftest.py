"""Fixtures for trainer tests: write a FineTuneJob spec and run ``tuneforge train`` on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuneforge.trainer.main import main as train_main


@dataclass
class TrainRun:
    """What one trainer run left behind."""

    exit_code: int
    workdir: Path
    output: Path
    termination_file: Path
    stderr: str = ""

    @property
    def termination(self) -> dict[str, Any]:
        text = self.termination_file.read_text(encoding="utf-8")
        assert len(text.encode("utf-8")) <= 4096
        result: dict[str, Any] = json.loads(text)
        return result

    def run_file(self, name: str) -> Path:
        return self.output / "run" / name

    @property
    def history(self) -> list[dict[str, Any]]:
        lines = self.run_file("metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    @property
    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.history if "loss" in entry]


def job_manifest(output: Path, **spec: Any) -> dict[str, Any]:
    hyperparameters = {
        "maxSteps": 4,
        "batchSize": 4,
        "maxSeqLength": 96,
        "loggingSteps": 1,
        "learningRate": 5e-3,
    }
    hyperparameters.update(spec.pop("hyperparameters", {}))
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "tiny", "namespace": "tests", "uid": "0000-1111"},
        "spec": {
            "model": {"source": "hf://tuneforge/tiny"},
            "dataset": {"source": "s3://datasets/sample.jsonl", **spec.pop("dataset", {})},
            "output": {"uri": output.as_uri()},
            "hyperparameters": hyperparameters,
            **spec,
        },
    }


Runner = Callable[..., TrainRun]


@pytest.fixture
def run_trainer(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """``run_trainer(data_dir, **spec)`` trains in-process; ``subprocess_run=True`` runs ``tuneforge train``.

    ``spec`` entries update the FineTuneJob spec (``hyperparameters`` are merged into small test defaults).
    """
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    counter = iter(range(1000))

    def run(
        data: Path,
        /,
        *,
        eval_dataset: Path | None = None,
        model: Path | None = None,
        output_uri: str | None = None,
        subprocess_run: bool = False,
        **spec: Any,
    ) -> TrainRun:
        base = tmp_path / f"run-{next(counter)}"
        base.mkdir()
        output, workdir, termination = base / "output", base / "work", base / "termination-log"
        spec_file = base / "spec.yaml"
        manifest = job_manifest(output, **spec)
        if output_uri is not None:
            manifest["spec"]["output"]["uri"] = output_uri
        spec_file.write_text(yaml.safe_dump(manifest), encoding="utf-8")
        argv = ["--spec", str(spec_file), "--model", str(model or tiny_model), "--dataset", str(data)]
        argv += ["--workdir", str(workdir)]
        if eval_dataset is not None:
            argv += ["--eval-dataset", str(eval_dataset)]
        if subprocess_run:
            env = {**os.environ, "TUNEFORGE_TERMINATION_MESSAGE_PATH": str(termination)}
            done = subprocess.run(
                [str(Path(sys.executable).parent / "tuneforge"), "train", *argv],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            return TrainRun(done.returncode, workdir, output, termination, done.stderr)
        monkeypatch.setenv("TUNEFORGE_TERMINATION_MESSAGE_PATH", str(termination))
        return TrainRun(train_main(argv), workdir, output, termination)

    return run
