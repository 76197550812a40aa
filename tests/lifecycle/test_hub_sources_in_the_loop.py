"""hf:// models in a cluster: the operator's fetch-model step reaches the Hub double with the revision and
the token from the Secret, and a refused token fails the Job at once with a reason a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cluster import install_crds
from support.hubserver import HubServer
from support.waiting import wait_for

FTJ = ("tuneforge.io/v1alpha1", "finetunejobs")


@pytest.fixture
def crds(kubectl: Any) -> None:
    install_crds(kubectl)


@pytest.fixture
def cluster_reaches_the_hub(kubelet: Any, hub_server: HubServer, tmp_path: Path) -> None:
    """The pods' network leads to the double (HF_ENDPOINT), as a cluster's leads to huggingface.co."""
    kubelet.extra_env.update({**hub_server.env, "HF_HOME": str(tmp_path / "unused-hf-home")})


def _apply(kubectl: Any, model: dict[str, Any], name: str) -> None:
    manifest = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"source": "file:///nonexistent/tuneforge-tests/train.jsonl"},
            "output": {"uri": "file:///nonexistent/tuneforge-tests/out"},
            "resources": {"gpus": 0},
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))


def _finished(kube_api: Any, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        conditions = (kube_api.client.get(*FTJ, name).get("status") or {}).get("conditions") or []
        done = [c for c in conditions if c["type"] == "Succeeded" and c["status"] == "False"]
        return done[0] if done else None

    result: dict[str, Any] = wait_for(check, timeout=60, message=f"{name} never failed")
    return result


def test_a_gated_model_with_a_token_without_access_fails_at_once_naming_the_gating(
    kube_api: Any,
    kubectl: Any,
    kubelet: Any,
    operator: Any,
    crds: None,
    hub_server: HubServer,
    cluster_reaches_the_hub: None,
) -> None:
    repo = hub_server.create_repo(hub_server.new_repo_id("gated-in-cluster"), gated=True)
    hub_server.seed(repo, {"config.json": b"{}"})
    token = hub_server.add_token("hf_cluster_token_without_licence", [], write=False)
    kubectl("create", "secret", "generic", "hf-token", f"--from-literal=token={token}")
    _apply(kubectl, {"source": f"hf://{repo}", "tokenSecretRef": {"name": "hf-token"}}, "gated")
    cond = _finished(kube_api, "gated")
    assert cond["reason"] == "FetchModelFailed"
    assert "container fetch-model exited with code 5" in cond["message"]
    assert f"{repo} is a gated model" in cond["message"] and "spec.model.tokenSecretRef" in cond["message"]
    assert token not in cond["message"]
    assert kube_api.client.get("batch/v1", "jobs", "gated")["status"]["failed"] == 1  # no retry


def test_the_model_is_fetched_at_its_revision_with_the_secrets_token(
    kube_api: Any,
    kubectl: Any,
    kubelet: Any,
    operator: Any,
    crds: None,
    hub_server: HubServer,
    cluster_reaches_the_hub: None,
) -> None:
    repo = hub_server.create_repo(hub_server.new_repo_id("private-in-cluster"), private=True)
    hub_server.seed(repo, {"config.json": b'{"v": 1}'}, tag="v1")
    token = hub_server.add_token("hf_cluster_reader", [repo], write=False)
    kubectl("create", "secret", "generic", "hf-reader", f"--from-literal=token={token}")
    _apply(
        kubectl,
        {"source": f"hf://{repo}", "revision": "v1", "tokenSecretRef": {"name": "hf-reader"}},
        "tagged",
    )
    # The model step succeeds; the dataset step then fails on its missing file, which ends the run early.
    cond = _finished(kube_api, "tagged")
    assert cond["reason"] == "FetchDatasetFailed", cond
    asked = [r.path for r in hub_server.records if r.path.startswith(f"/api/models/{repo}/revision/")]
    assert f"/api/models/{repo}/revision/v1" in asked
    assert hub_server.downloads(repo).count("config.json") == 1
