"""A training pod evicted mid-run (node drain, spot reclaim) resumes from its checkpoint and succeeds.

The whole stack: kubectl apply -> the operator -> a Job -> the kubelet fixture runs the
pod; the test evicts it as a drain does (DisruptionTarget condition, SIGTERM, SIGKILL
after terminationGracePeriodSeconds). The trainer saves a checkpoint to S3 (SeaweedFS)
and exits 143; the Job's podFailurePolicy ignores the failure, the job controller starts
a new pod, and its trainer resumes from that checkpoint. Exactness (same adapter as an
uninterrupted run) is shown on the trainer alone in tests/trainer/test_checkpoints_resume.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.cluster import FTJ, create_s3_secret, install_crds, succeeded, wait_finished
from support.storage_fixtures import applied_env
from support.waiting import wait_for

from tuneforge.storage import read_text, upload_file, upload_tree
from tuneforge.trainer.samplelog import read_sample_log

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

REPO = Path(__file__).resolve().parents[2]
STEPS, BATCH = 12, 4


def manifest(bucket: str, s3_server) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "spot"},
            "spec": {
                "model": {"source": f"s3://{bucket}/models/tiny-model"},
                "dataset": {"source": f"s3://{bucket}/data/alpaca-sample.jsonl", "format": "alpaca"},
                "output": {"uri": f"s3://{bucket}/runs/spot"},
                "storage": {
                    "s3": {
                        "endpoint": s3_server.endpoint,
                        "region": s3_server.region,
                        "credentialsSecret": "s3-credentials",
                    }
                },
                "checkpoints": {"intervalSteps": 4, "keep": 2},
                "hyperparameters": {
                    "maxSteps": STEPS,
                    "batchSize": BATCH,
                    "maxSeqLength": 64,
                    "loggingSteps": 1,
                    "learningRate": 5e-3,
                },
                "resources": {"gpus": 0, "spot": True},
            },
        }
    )


@pytest.fixture
def staged_bucket(s3_server, tiny_model):
    bucket = s3_server.make_bucket()
    with applied_env(s3_server.env):
        upload_tree(tiny_model, f"s3://{bucket}/models/tiny-model")
        upload_file(REPO / "examples/data/alpaca-sample.jsonl", f"s3://{bucket}/data/alpaca-sample.jsonl")
    return bucket


def trainer_state(pod: dict) -> dict:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status["name"] == "trainer":
            return status.get("state") or {}
    return {}


def test_an_evicted_training_pod_resumes_from_its_checkpoint_and_succeeds(
    kube_api, kubectl, kubelet, operator, s3_server, staged_bucket
):
    # Progress patches at once, and each trainer logs the rows every step trains on.
    kubelet.extra_env.update({"TUNEFORGE_STATUS_INTERVAL": "0", "TUNEFORGE_SAMPLE_LOG": "1"})
    install_crds(kubectl)
    create_s3_secret(kubectl, s3_server)
    kubectl("apply", "-f", "-", input=manifest(staged_bucket, s3_server))

    def training_past_step_two() -> dict | None:
        ftj = kube_api.client.get(*FTJ, "spot")
        progress = (ftj.get("status") or {}).get("progress") or {}
        return ftj if progress.get("step", 0) >= 3 else None

    wait_for(training_past_step_two, timeout=300, interval=0.1, message="training never got past step 2")
    [first] = kube_api.client.list("v1", "pods", namespace="default")
    assert first["spec"]["terminationGracePeriodSeconds"] == 120
    kubelet.evict(first["metadata"]["name"])

    messages: list[str] = []
    ftj = wait_finished(kube_api, FTJ, "spot", timeout=400, interval=0.1, seen=messages, field="message")
    cond = succeeded(ftj)
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded"), cond

    # The evicted pod: DisruptionTarget, exit 143, and the checkpoint it saved on the way out.
    pods = sorted(
        kube_api.client.list("v1", "pods", namespace="default"), key=lambda p: p["metadata"]["name"]
    )
    evicted = next(p for p in pods if p["metadata"]["name"] == first["metadata"]["name"])
    assert evicted["status"]["phase"] == "Failed"
    assert any(
        c["type"] == "DisruptionTarget" and c["status"] == "True" for c in evicted["status"]["conditions"]
    )
    stopped = trainer_state(evicted)["terminated"]
    assert stopped["exitCode"] == 143
    said = json.loads(stopped["message"])
    assert said["reason"] == "Preempted", said
    step = said["checkpoint"]["step"]
    assert 3 <= step < STEPS
    prefix = f"s3://{staged_bucket}/runs/spot/checkpoints"
    assert said["checkpoint"]["uri"] == f"{prefix}/checkpoint-{step}"

    # Retried without counting against backoffLimit; the second pod finished the run.
    assert len(pods) == 2
    job = kube_api.client.get("batch/v1", "jobs", "spot")
    assert job["status"]["failed"] == 0 and job["status"]["succeeded"] == 1
    resumed = f"the trainer is running (attempt 2, resumed from step {step} after a preemption)"
    assert resumed in messages, messages
    [second] = [p for p in pods if p is not evicted]
    log = kubelet.log_of(second["metadata"]["name"], "trainer")
    assert f"resumed from step {step}" in log

    status = ftj["status"]
    assert status["artifacts"]["checkpoints"] == prefix
    assert status["progress"]["step"] == STEPS

    # keep=2 in the store, read with a client of its own: the newest two complete checkpoints.
    keys = s3_server.list_keys(staged_bucket, "runs/spot/checkpoints/")
    complete = sorted(int(k.split("/")[3].split("-")[1]) for k in keys if k.endswith("/_MANIFEST.json"))
    assert complete == [8, 12]
    assert {k.split("/")[3] for k in keys} == {"checkpoint-8", "checkpoint-12"}

    # Each attempt left its sample log: steps 1..N, then N+1..12; no step and no sample twice.
    samples = sorted(s3_server.list_keys(staged_bucket, "runs/spot/run/samples/"))
    assert len(samples) == 2
    with applied_env(s3_server.env):
        before, after = (read_sample_log(read_text(f"s3://{staged_bucket}/{k}")) for k in samples)
    assert [s for s, _ in before] == list(range(1, step + 1))
    assert [s for s, _ in after] == list(range(step + 1, STEPS + 1))
    rows = [r for _, batch in before + after for r in batch]
    # 12 steps of 4 stay inside the first epoch of 300 samples: every row at most once.
    assert len(rows) == STEPS * BATCH and len(set(rows)) == len(rows) and -1 not in rows
