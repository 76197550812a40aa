"""The operator against the emulated API: refusals, failures, waiting and pausing.

Each test applies a FineTuneJob with kubectl and reads what a user would read:
the Succeeded condition, the Events, the Job (or its absence).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.cluster import create_s3_secret, install_crds
from support.manifests import merge
from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
FTJ = ("tuneforge.io/v1alpha1", "finetunejobs")

MANIFEST = {
    "apiVersion": "tuneforge.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "probe"},
    "spec": {
        "model": {"source": "s3://no-such-bucket-tf/models/tiny"},
        "dataset": {"source": "s3://no-such-bucket-tf/data.jsonl"},
        "output": {"uri": "s3://no-such-bucket-tf/runs/probe"},
        "resources": {"gpus": 0},
    },
}


@pytest.fixture
def crds(kubectl):
    install_crds(kubectl)


def apply(kubectl, **spec) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(merge(MANIFEST, {"spec": spec})))


def condition(kube_api, name="probe"):
    ftj = kube_api.client.get(*FTJ, name)
    for cond in (ftj.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Succeeded":
            return cond
    return None


def wait_reason(kube_api, reason, timeout=60.0):
    def check():
        cond = condition(kube_api)
        return cond if cond and cond["reason"] == reason else None

    return wait_for(check, timeout=timeout, message=f"never reached {reason}: last {condition(kube_api)}")


def events_for(kube_api, name="probe"):
    return [e for e in kube_api.client.list("v1", "events") if e["involvedObject"].get("name") == name]


def wait_for_warning(kube_api, reason, name="probe"):
    """The Warning Event with ``reason`` (kopf posts Events from a queue, maybe after the condition)."""
    return wait_for(
        lambda: [e for e in events_for(kube_api, name) if e["reason"] == reason and e["type"] == "Warning"],
        message=f"no Warning event {reason}",
    )


def s3_storage(s3_server, secret="s3-credentials"):
    return {"s3": {"endpoint": s3_server.endpoint, "region": s3_server.region, "credentialsSecret": secret}}


def test_unsupported_features_are_refused_by_name_and_nothing_runs(kube_api, kubectl, operator, crds):
    apply(kubectl, cleanupPolicy="Delete", modality="vision", provider="unsloth")
    cond = wait_reason(kube_api, "NotSupportedYet")
    assert cond["status"] == "False"
    assert "spec.cleanupPolicy Delete is not supported yet" in cond["message"]
    assert "spec.modality vision with spec.provider unsloth is not supported yet" in cond["message"]
    warnings = [e for e in events_for(kube_api) if e["reason"] == "NotSupportedYet"]
    assert warnings and warnings[0]["type"] == "Warning"
    assert kube_api.client.list("batch/v1", "jobs", namespace="default") == []


def test_a_spec_that_slipped_past_an_outdated_crd_is_refused_as_invalid(kube_api, kubectl, operator):
    # An old CRD that checks nothing (say, a chart upgrade that skipped CRDs).
    crd = yaml.safe_load((REPO / "crds" / "finetunejobs.tuneforge.io.yaml").read_text())
    for version in crd["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"] = {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(crd))
    kubectl("wait", "--for=condition=established", "crd/finetunejobs.tuneforge.io")
    apply(kubectl, hyperparameters={"learningRate": -1, "batchSize": "four"})
    cond = wait_reason(kube_api, "InvalidSpec")
    assert cond["status"] == "False"
    assert "spec.hyperparameters.learningRate: Input should be greater than 0" in cond["message"]
    assert "spec.hyperparameters.batchSize" in cond["message"]
    wait_for_warning(kube_api, "InvalidSpec")
    assert kube_api.client.list("batch/v1", "jobs", namespace="default") == []


def test_a_missing_bucket_fails_the_fetch_at_once_with_the_reason(
    kube_api, kubectl, kubelet, operator, crds, s3_server
):
    create_s3_secret(kubectl, s3_server)
    apply(kubectl, storage=s3_storage(s3_server), runPolicy={"backoffLimit": 3})
    cond = wait_reason(kube_api, "FetchModelFailed")
    assert cond["status"] == "False"
    assert "container fetch-model exited with code 4" in cond["message"]
    assert "no-such-bucket-tf" in cond["message"]
    job = kube_api.client.get("batch/v1", "jobs", "probe")
    # Not found cannot be fixed by retrying: one pod, no retries.
    assert job["status"]["failed"] == 1
    assert any(c["reason"] == "PodFailurePolicy" for c in job["status"]["conditions"])
    wait_for_warning(kube_api, "FetchModelFailed")


def test_a_missing_secret_is_named_and_the_run_goes_on_once_it_exists(
    kube_api, kubectl, kubelet, operator, crds, s3_server
):
    apply(kubectl, storage=s3_storage(s3_server, secret="late-credentials"))
    cond = wait_reason(kube_api, "CreateContainerConfigError")
    assert cond["status"] == "Unknown"
    assert 'spec.storage.s3.credentialsSecret: secret "late-credentials" not found' in cond["message"]
    create_s3_secret(kubectl, s3_server, name="late-credentials")
    # With the secret in place the fetch runs, and fails on the missing bucket.
    wait_reason(kube_api, "FetchModelFailed")


def test_suspend_pauses_and_resume_starts_the_job(kube_api, kubectl, kubelet, operator, crds, s3_server):
    create_s3_secret(kubectl, s3_server)
    apply(kubectl, storage=s3_storage(s3_server), runPolicy={"suspend": True})
    cond = wait_reason(kube_api, "Suspended")
    assert cond["status"] == "Unknown"
    assert kube_api.client.get("batch/v1", "jobs", "probe")["spec"]["suspend"] is True
    assert kube_api.client.list("v1", "pods", namespace="default") == []
    kubectl("patch", "ftj", "probe", "--type=merge", "-p", '{"spec": {"runPolicy": {"suspend": false}}}')
    wait_reason(kube_api, "FetchModelFailed")
    ftj = kube_api.client.get(*FTJ, "probe")
    assert ftj["status"]["observedGeneration"] == ftj["metadata"]["generation"] == 2


def test_a_kueue_queue_holds_the_job_until_admitted(kube_api, kubectl, kubelet, operator, crds, s3_server):
    create_s3_secret(kubectl, s3_server)
    apply(kubectl, storage=s3_storage(s3_server), runPolicy={"queueName": "team-a"})
    cond = wait_reason(kube_api, "Queued")
    assert "Kueue queue team-a" in cond["message"]
    job = kube_api.client.get("batch/v1", "jobs", "probe")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    # Kueue admits by unsuspending the Job.
    kube_api.client.patch("batch/v1", "jobs", "probe", {"spec": {"suspend": False}}, namespace="default")
    wait_reason(kube_api, "FetchModelFailed")


def test_changing_an_immutable_field_is_rejected_by_the_api(kube_api, kubectl, operator, crds):
    apply(kubectl, method="full", cleanupPolicy="Delete")
    wait_reason(kube_api, "NotSupportedYet")
    result = kubectl(
        "patch", "ftj", "probe", "--type=merge", "-p", '{"spec": {"method": "lora"}}', check=False
    )
    assert result.returncode != 0
    assert "spec.method" in result.stderr and "immutable" in result.stderr
