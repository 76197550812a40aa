"""Raw data to a quantized GGUF on a bucket, from one FineTuneJob.

kubectl applies a FineTuneJob whose base model sits on a PersistentVolumeClaim and whose
spec.exports asks for a merged model and a q8_0 GGUF on S3. The operator trains, then creates
the two ModelExports, runs their export Jobs, and records one artifact per destination.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.cluster import FTJ, MEX, create_s3_secret, install_crds, succeeded, wait_finished
from support.storage_fixtures import applied_env
from support.waiting import wait_for

from tuneforge.storage import fetch, read_text, upload_file

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

REPO = Path(__file__).resolve().parents[2]


def test_a_finetunejob_with_exports_ends_with_a_merged_model_and_a_gguf_on_s3(
    kube_api: Any, kubectl: Any, kubelet: Any, operator: Any, s3_server: Any, tiny_model: Path, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    claim = tmp_path / "models-claim"
    shutil.copytree(tiny_model, claim / "tiny")
    kubelet.claims["models"] = claim
    with applied_env(s3_server.env):
        upload_file(REPO / "examples/data/alpaca-sample.jsonl", f"s3://{bucket}/data/alpaca.jsonl")
    install_crds(kubectl)
    create_s3_secret(kubectl, s3_server)
    releases = f"s3://{bucket}/releases"
    manifest = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "ship"},
        "spec": {
            "model": {"source": "pvc://models/tiny"},
            "dataset": {"source": f"s3://{bucket}/data/alpaca.jsonl", "format": "alpaca"},
            "hyperparameters": {"maxSteps": 8, "batchSize": 8, "maxSeqLength": 128, "learningRate": 0.002},
            "resources": {"gpus": 0},
            "storage": {
                "s3": {
                    "endpoint": s3_server.endpoint,
                    "region": s3_server.region,
                    "credentialsSecret": "s3-credentials",
                }
            },
            "output": {"uri": f"s3://{bucket}/runs/ship"},
            "exports": [
                {"name": "merged", "format": "merged", "destinations": [{"uri": f"{releases}/merged"}]},
                {
                    "name": "gguf",
                    "format": "gguf",
                    "quantization": "q8_0",
                    "destinations": [{"uri": f"{releases}/gguf"}],
                },
            ],
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))

    ftj = wait_finished(kube_api, FTJ, "ship", timeout=300)
    assert succeeded(ftj)["status"] == "True", succeeded(ftj)

    def both_exports() -> dict[str, Any] | None:
        # Created once the operator sees the job succeed: an event after the status update.
        found = {m["metadata"]["name"]: m for m in kube_api.client.list(*MEX, namespace="default")}
        return found if len(found) >= 2 else None

    exports = wait_for(both_exports, timeout=60, interval=0.2, message="the exports were never created")
    assert set(exports) == {"ship-merged", "ship-gguf"}
    for export in exports.values():
        assert export["metadata"]["ownerReferences"][0]["name"] == "ship"

    merged = wait_finished(kube_api, MEX, "ship-merged", timeout=300)
    gguf = wait_finished(kube_api, MEX, "ship-gguf", timeout=300)
    for done in (merged, gguf):
        cond = succeeded(done)
        assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), cond
        (artifact,) = done["status"]["artifacts"]
        assert artifact["bytes"] > 0 and len(artifact["sha256"]) == 64 and artifact["reused"] is False

    (merged_artifact,) = merged["status"]["artifacts"]
    assert merged_artifact["uri"] == f"{releases}/merged/merged"
    (gguf_artifact,) = gguf["status"]["artifacts"]
    assert gguf_artifact["uri"] == f"{releases}/gguf/model-q8_0.gguf"
    assert gguf_artifact["quantization"] == "q8_0" and gguf_artifact["llamaCppVersion"]

    # What the status says is what the bucket holds.
    with applied_env(s3_server.env):
        fetch(gguf_artifact["uri"], tmp_path / "gguf")
        fetch(merged_artifact["uri"], tmp_path / "merged")
        record = json.loads(read_text(gguf_artifact["uri"] + ".tuneforge.json"))
    gguf_file = tmp_path / "gguf" / "model-q8_0.gguf"
    assert gguf_file.read_bytes()[:4] == b"GGUF"
    assert gguf_file.stat().st_size == gguf_artifact["bytes"]
    assert record["digest"] == gguf_artifact["digest"]
    assert (tmp_path / "merged" / "tokenizer.model").exists()
    assert kubectl("get", "mex").stdout.count("Succeeded") == 2
