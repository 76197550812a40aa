"""Two nodes through the whole path: kubectl apply -> operator -> headless Service + Indexed Job ->
two pods that fetch on their own, meet at the c10d rendezvous and train as one DDP run (gloo on CPU).

The kubelet fixture runs both pods at once, gives each its completion index (annotation and
JOB_COMPLETION_INDEX) and host name <job>-<index>, and — the one emulated piece of networking —
resolves the pods' names under the headless Service to 127.0.0.1, only while that Service exists.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from support.cluster import FTJ, create_s3_secret, install_crds, succeeded, wait_finished
from support.storage_fixtures import applied_env

from tuneforge.storage import fetch, upload_file, upload_tree

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

REPO = Path(__file__).resolve().parents[2]
SAMPLES = 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def rendezvous_port(monkeypatch) -> int:
    """A free port for the index-0 pod's store (operator configuration, read when the operator starts)."""
    port = free_port()
    monkeypatch.setenv("TUNEFORGE_RENDEZVOUS_PORT", str(port))
    return port


@pytest.fixture
def staged(s3_server, tiny_model, tmp_path):
    bucket = s3_server.make_bucket()
    data = tmp_path / "train.jsonl"
    lines = (REPO / "examples/data/alpaca-sample.jsonl").read_text().splitlines()[:SAMPLES]
    data.write_text("\n".join(lines) + "\n")
    with applied_env(s3_server.env):
        upload_tree(tiny_model, f"s3://{bucket}/models/tiny")
        upload_file(data, f"s3://{bucket}/data/train.jsonl")
    return bucket


def manifest(bucket: str, endpoint: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "gang"},
            "spec": {
                "model": {"source": f"s3://{bucket}/models/tiny"},
                "dataset": {"source": f"s3://{bucket}/data/train.jsonl", "format": "alpaca"},
                "output": {"uri": f"s3://{bucket}/runs/gang"},
                "hyperparameters": {"epochs": 1, "batchSize": 4, "maxSeqLength": 96, "loggingSteps": 1},
                "storage": {"s3": {"endpoint": endpoint, "region": "us-east-1", "credentialsSecret": "s3"}},
                # One GPU per pod in a cluster; here the trainer finds none and trains on the CPU (gloo).
                "resources": {"gpus": 1},
                "distributed": {"nodes": 2},
            },
        }
    )


def test_two_nodes_train_one_adapter_through_the_rendezvous(
    kube_api, kubectl, kubelet, rendezvous_port, operator, s3_server, staged, tmp_path
):
    install_crds(kubectl)
    create_s3_secret(kubectl, s3_server, name="s3")
    kubectl("apply", "-f", "-", input=manifest(staged, s3_server.endpoint))

    stages: list[str] = []
    ftj = wait_finished(kube_api, FTJ, "gang", timeout=300, seen=stages)
    cond = succeeded(ftj)
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), (cond, stages)
    assert "Training" in stages

    # The operator built the gang: a headless Service and an Indexed Job of two pods.
    service = kube_api.client.get("v1", "services", "gang")
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["ownerReferences"][0]["name"] == "gang"
    job = kube_api.client.get("batch/v1", "jobs", "gang")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    assert job["status"]["succeeded"] == 2
    pods = kube_api.client.list("v1", "pods", namespace="default")
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1"]
    assert {p["spec"]["hostname"] for p in pods} == {"gang-0", "gang-1"}

    # Rank 0's results reached the status; the adapter and the run record are on S3.
    status = ftj["status"]
    assert status["metrics"]["trainLoss"] > 0
    assert status["progress"]["step"] == status["progress"]["totalSteps"] == SAMPLES // (4 * 2)
    with applied_env(s3_server.env):
        fetch(status["artifacts"]["runRecord"] + "/status.json", tmp_path / "record")
        fetch(status["artifacts"]["adapter"], tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    record = json.loads((tmp_path / "record" / "status.json").read_text())

    # The two pods trained together: world size 2 over 2 nodes, half the samples each, same weights.
    dist = record["distributed"]
    assert (dist["worldSize"], dist["nodes"], dist["processesPerNode"]) == (2, 2, 1)
    assert dist["backend"] == "gloo"
    assert [(r["rank"], r["node"]) for r in dist["ranks"]] == [(0, 0), (1, 1)]
    assert [r["samples"] for r in dist["ranks"]] == [SAMPLES // 2, SAMPLES // 2]
    assert dist["weightsIdentical"] is True

    # Only rank 0 wrote the run record; the index-1 pod's trainer says so in its own message.
    worker = next(
        p for p in pods if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"
    )
    state = next(s for s in worker["status"]["containerStatuses"] if s["name"] == "trainer")["state"]
    said = json.loads(state["terminated"]["message"])
    assert said["reason"] == "Succeeded" and "rank 0 uploads the results" in said["message"]
