"""The cluster's shared model cache: two FineTuneJobs on the same base model download it once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cluster import install_crds
from support.waiting import wait_for

FTJ = ("tuneforge.io/v1alpha1", "finetunejobs")


@pytest.fixture
def model_cache(monkeypatch: pytest.MonkeyPatch, kubelet: Any, hub_server: Any, tmp_path: Path) -> Path:
    """The operator configured with a cache claim, the claim a folder, the pods' network the Hub double."""
    monkeypatch.setenv("TUNEFORGE_MODEL_CACHE_CLAIM", "model-cache")
    folder = tmp_path / "model-cache"
    folder.mkdir()
    kubelet.claims["model-cache"] = folder
    kubelet.extra_env.update({**hub_server.env, "HF_HOME": str(tmp_path / "unused-hf-home")})
    return folder


def run_until_dataset_fetch(kubectl: Any, kube_api: Any, name: str, repo: str) -> None:
    """A job whose dataset is missing: fetch-model runs, then the Job fails at fetch-dataset."""
    manifest = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": f"hf://{repo}"},
            "dataset": {"source": "file:///nonexistent/tuneforge-tests/train.jsonl"},
            "output": {"uri": "file:///nonexistent/tuneforge-tests/out"},
            "resources": {"gpus": 0},
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def failed_at_dataset() -> bool:
        conditions = (kube_api.client.get(*FTJ, name).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Succeeded" and c["reason"] == "FetchDatasetFailed" for c in conditions)

    wait_for(failed_at_dataset, timeout=60, message=f"{name} did not get past fetch-model")


def test_the_second_job_takes_the_base_model_from_the_cache(
    model_cache: Path, kube_api: Any, kubectl: Any, operator: Any, hub_server: Any, tiny_model: Path
) -> None:
    install_crds(kubectl)
    repo = hub_server.new_repo_id("cached-base")
    hub_server.seed(repo, tiny_model)

    run_until_dataset_fetch(kubectl, kube_api, "first", repo)
    first = len(hub_server.downloads(repo))
    assert first > 0
    run_until_dataset_fetch(kubectl, kube_api, "second", repo)
    assert len(hub_server.downloads(repo)) == first, "the second job downloaded the model again"
    # One complete copy of the model sits in the claim.
    assert any(p.name == "model.safetensors" for p in model_cache.rglob("*"))
