"""A training run inside a (emulated) cluster writes progress, metrics and artifacts to its FineTuneJob."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
FTJ = ("tuneforge.io/v1alpha1", "finetunejobs")


def test_the_trainer_patches_its_own_status(
    run_trainer: Any, kube_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_api.load_crds()
    if not kube_api.client.exists("v1", "namespaces", "tests"):
        kube_api.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tests"}})
    kube_api.client.create(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "tiny", "namespace": "tests"},
            "spec": {
                "model": {"source": "hf://tuneforge/tiny"},
                "dataset": {"source": "s3://datasets/sample.jsonl"},
                "output": {"uri": "s3://bucket/out"},
            },
        }
    )
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(kube_api.token)
    shutil.copy(kube_api.ca_path, account / "ca.crt")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", kube_api.host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube_api.port))
    monkeypatch.setenv("TUNEFORGE_SERVICEACCOUNT_DIR", str(account))

    # Packing, a cosine schedule with warmup and accumulation take their own paths through trl.
    hyperparameters = {
        "maxSteps": 6,
        "loggingSteps": 4,
        "packing": True,
        "lrScheduler": "cosine",
        "warmupRatio": 0.2,
        "gradientAccumulationSteps": 2,
    }
    run = run_trainer(EXAMPLES / "alpaca-sample.jsonl", hyperparameters=hyperparameters)
    assert run.exit_code == 0, run.termination

    status = kube_api.client.get(*FTJ, "tiny", "tests")["status"]
    assert status["progress"]["step"] == 6 and status["progress"]["percent"] == 100
    assert status["progress"]["message"].startswith("Succeeded: trained 6 steps")
    assert status["metrics"] == run.termination["metrics"]
    assert status["artifacts"] == run.termination["artifacts"]
    assert not status.get("conditions")  # the operator's, never the trainer's
