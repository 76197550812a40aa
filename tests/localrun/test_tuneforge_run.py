"""`tuneforge run`: the quickstart manifest on this machine, exactly as `make demo` runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TUNEFORGE = Path(sys.executable).with_name("tuneforge")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "AWS_", "TUNEFORGE_"))}
    return subprocess.run(
        [str(TUNEFORGE), "run", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture
def workspace(tmp_path: Path, tiny_model: Path) -> Path:
    """A folder laid out like the repository root after `make demo` built the tiny model."""
    shutil.copytree(tiny_model, tmp_path / ".cache" / "tiny-model")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    return tmp_path


def quickstart(workspace: Path, **spec) -> Path:
    doc = yaml.safe_load((workspace / "examples" / "quickstart.yaml").read_text())
    doc["spec"]["hyperparameters"]["maxSteps"] = 6
    doc["spec"].update(spec)
    path = workspace / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_the_quickstart_trains_and_says_where_the_adapter_is(workspace: Path) -> None:
    result = run(str(quickstart(workspace)), cwd=workspace)
    assert result.returncode == 0, result.stderr
    for step in ("fetch-model", "fetch-dataset", "trainer"):
        assert f"✔ {step}" in result.stderr
    assert "adapter:    file://runs/quickstart/adapter" in result.stdout
    assert "run record: file://runs/quickstart/run" in result.stdout
    adapter = workspace / "runs" / "quickstart" / "adapter"
    assert (adapter / "adapter_model.safetensors").exists()
    status = json.loads((workspace / "runs" / "quickstart" / "run" / "status.json").read_text())
    assert status["reason"] == "Succeeded"


@pytest.mark.slow
def test_a_pvc_source_reads_from_the_claimed_folder(workspace: Path, tmp_path: Path) -> None:
    claim = tmp_path / "claim"
    shutil.copytree(workspace / ".cache" / "tiny-model", claim / "tiny")
    manifest = quickstart(
        workspace,
        model={"source": "pvc://models/tiny"},
        output={"uri": "file://runs/from-pvc"},
    )
    result = run(str(manifest), "--claim", f"models={claim}", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert "fetch-model" not in result.stderr  # mounted, not copied
    assert (workspace / "runs" / "from-pvc" / "adapter" / "adapter_model.safetensors").exists()


def test_an_invalid_manifest_names_the_field_and_runs_nothing(workspace: Path) -> None:
    manifest = quickstart(workspace, hyperparameters={"learningRate": 0, "batchSize": "8"})
    result = run(str(manifest), cwd=workspace)
    assert result.returncode == 3
    assert "spec.hyperparameters.learningRate: Input should be greater than 0" in result.stderr
    assert "spec.hyperparameters.batchSize: Input should be a valid integer" in result.stderr
    assert not (workspace / "runs").exists()


def test_what_is_not_built_yet_is_refused_by_name(workspace: Path) -> None:
    result = run(str(quickstart(workspace, cleanupPolicy="Delete")), cwd=workspace)
    assert result.returncode == 6
    assert "spec.cleanupPolicy Delete is not supported yet" in result.stderr


def test_a_missing_secret_is_named_before_anything_runs(workspace: Path) -> None:
    manifest = quickstart(
        workspace,
        dataset={"source": "s3://data/train.jsonl", "format": "alpaca", "evalSplit": 0.1},
        storage={"s3": {"credentialsSecret": "nowhere"}},
    )
    result = run(str(manifest), cwd=workspace)
    assert result.returncode != 0
    assert 'secret "nowhere" not found' in result.stderr


def test_dry_run_prints_the_pod_the_operator_would_create(workspace: Path) -> None:
    result = run(str(quickstart(workspace)), "--dry-run", cwd=workspace)
    assert result.returncode == 0, result.stderr
    pod = yaml.safe_load(result.stdout)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["fetch-model", "fetch-dataset"]
    assert pod["spec"]["containers"][0]["args"][0] == "train"


def test_claims_must_be_name_equals_folder(workspace: Path) -> None:
    result = run(str(quickstart(workspace)), "--claim", "models", cwd=workspace)
    assert result.returncode == 2
    assert "expected NAME=DIR" in result.stderr
