"""The whole path: kubectl apply -> operator -> Job -> fetch from S3 -> train -> adapter on S3.

Everything is real but the cluster: the API server is the emulation in
tests/support/kubeapi (kopf and kubectl talk to it over HTTPS), the Job's
pods run as local processes through the kubelet fixture, S3 is SeaweedFS,
and the model is the tiny Llama trained on this CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from support.cluster import FTJ, create_s3_secret, install_crds, succeeded, wait_finished
from support.storage_fixtures import applied_env
from support.waiting import wait_for

from tuneforge.storage import fetch, upload_file, upload_tree

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

REPO = Path(__file__).resolve().parents[2]


def cluster_manifest(bucket: str, endpoint: str) -> str:
    """examples/quickstart-cluster.yaml, pointed at the test's bucket and server."""
    text = (REPO / "examples" / "quickstart-cluster.yaml").read_text()
    text = text.replace("tuneforge-quickstart", bucket).replace("http://minio.minio.svc:9000", endpoint)
    doc = yaml.safe_load(text)
    doc["spec"]["hyperparameters"]["maxSteps"] = 12
    return yaml.safe_dump(doc)


@pytest.fixture
def staged_bucket(s3_server, tiny_model):
    """The tiny model and the sample data in a fresh bucket, as a user would upload them."""
    bucket = s3_server.make_bucket()
    with applied_env(s3_server.env):
        upload_tree(tiny_model, f"s3://{bucket}/models/tiny-model")
        upload_file(REPO / "examples/data/alpaca-sample.jsonl", f"s3://{bucket}/data/alpaca-sample.jsonl")
    return bucket


def test_quickstart_cluster_manifest_trains_an_adapter_onto_s3(
    kube_api, kubectl, kubelet, operator, s3_server, staged_bucket, tiny_model, tmp_path
):
    install_crds(kubectl)
    create_s3_secret(kubectl, s3_server)
    kubectl("apply", "-f", "-", input=cluster_manifest(staged_bucket, s3_server.endpoint))

    stages: list[str] = []
    ftj = wait_finished(kube_api, FTJ, "quickstart", timeout=300, seen=stages)
    cond = succeeded(ftj)
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), cond
    assert cond["observedGeneration"] == ftj["metadata"]["generation"]
    # The stages a user watching `kubectl get ftj -w` sees, in order.
    assert stages[-1] == "Succeeded"
    assert "Training" in stages and stages.index("Training") < len(stages) - 1

    status = ftj["status"]
    assert status["progress"]["percent"] == 100
    assert status["progress"]["step"] == status["progress"]["totalSteps"] == 12
    assert status["metrics"]["trainLoss"] > 0
    adapter_uri = status["artifacts"]["adapter"]
    assert adapter_uri == f"s3://{staged_bucket}/runs/quickstart/adapter"
    assert status["jobName"] == "quickstart"
    assert status["startTime"] and status["completionTime"]

    # The adapter on S3 loads with peft onto the base model, and it learned something.
    with applied_env(s3_server.env):
        fetch(adapter_uri, tmp_path / "adapter")
        fetch(status["artifacts"]["runRecord"] + "/status.json", tmp_path / "record")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    model = PeftModel.from_pretrained(base, tmp_path / "adapter")
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(torch.count_nonzero(t) > 0 for t in lora_b), (
        "LoRA B matrices are still at their zero init"
    )
    assert model is not None
    assert json.loads((tmp_path / "record" / "status.json").read_text())["reason"] == "Succeeded"

    # kopf keeps its bookkeeping under our own prefix.
    annotations = ftj["metadata"].get("annotations") or {}
    assert "tuneforge.io/last-handled-configuration" in annotations
    assert not [k for k in annotations if "kopf.zalando.org" in k]
    assert not [f for f in ftj["metadata"].get("finalizers") or [] if "kopf" in f]

    # kubectl shows it as a user expects.
    table = kubectl("get", "ftj").stdout
    header, row = table.splitlines()[:2]
    for column in ("NAME", "STATUS", "REASON", "PROGRESS", "LOSS", "AGE"):
        assert column in header
    assert row.split()[:4] == ["quickstart", "True", "Succeeded", "100"]

    # One Event per transition, on the FineTuneJob.
    events = kube_api.client.list("v1", "events", namespace="default")
    reasons = [e["reason"] for e in events if e["involvedObject"].get("name") == "quickstart"]
    assert "Training" in reasons and "Succeeded" in reasons

    # The secret's values appear nowhere in what the operator created.
    job = kube_api.client.get("batch/v1", "jobs", "quickstart")
    config_map = kube_api.client.get("v1", "configmaps", "quickstart-spec")
    for obj in (job, config_map, ftj):
        dumped = json.dumps(obj)
        assert s3_server.secret_key not in dumped and s3_server.access_key not in dumped

    # Deleting the FineTuneJob removes the Job and its pods, and keeps the artifacts.
    kubectl("delete", "ftj", "quickstart", "--wait=true")
    wait_for(
        lambda: not kube_api.client.list("batch/v1", "jobs", namespace="default"), message="Job not removed"
    )
    wait_for(lambda: not kube_api.client.list("v1", "pods", namespace="default"), message="pods not removed")
    with applied_env(s3_server.env):
        fetch(adapter_uri, tmp_path / "after-delete")
    assert (tmp_path / "after-delete" / "adapter_model.safetensors").exists()
