"""A ModelExport waits for its FineTuneJob, and says so; it fails clearly when the job fails."""

from __future__ import annotations

import pytest
import yaml
from support.cluster import install_crds
from support.waiting import wait_for

MEX = ("tuneforge.io/v1alpha1", "modelexports")

EXPORT = {
    "apiVersion": "tuneforge.io/v1alpha1",
    "kind": "ModelExport",
    "metadata": {"name": "ship"},
    "spec": {
        "source": {"fineTuneJob": "later"},
        "format": "merged",
        "destinations": [{"uri": "s3://releases/x"}],
    },
}
# A FineTuneJob the operator refuses at once (cleanupPolicy Delete is not built yet).
DOOMED = {
    "apiVersion": "tuneforge.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "later"},
    "spec": {
        "model": {"source": "s3://models/tiny"},
        "dataset": {"source": "s3://data/train.jsonl"},
        "output": {"uri": "s3://out/runs/later"},
        "cleanupPolicy": "Delete",
    },
}


@pytest.fixture
def crds(kubectl):
    install_crds(kubectl)


def export_condition(kube_api):
    for cond in (kube_api.client.get(*MEX, "ship").get("status") or {}).get("conditions") or []:
        if cond["type"] == "Succeeded":
            return cond
    return None


def wait_reason(kube_api, reason):
    def check():
        cond = export_condition(kube_api)
        return cond if cond and cond["reason"] == reason else None

    return wait_for(check, timeout=60, message=f"never reached {reason}: last {export_condition(kube_api)}")


def test_an_export_waits_for_a_missing_job_then_fails_with_it(kube_api, kubectl, operator, crds):
    kubectl("apply", "-f", "-", input=yaml.safe_dump(EXPORT))
    cond = wait_reason(kube_api, "WaitingForSource")
    assert cond["status"] == "Unknown"
    assert "FineTuneJob later, which does not exist" in cond["message"]
    assert kube_api.client.list("batch/v1", "jobs", namespace="default") == []

    kubectl("apply", "-f", "-", input=yaml.safe_dump(DOOMED))
    cond = wait_reason(kube_api, "SourceFailed")
    assert cond["status"] == "False"
    assert "FineTuneJob later failed (NotSupportedYet)" in cond["message"]
    events = [e for e in kube_api.client.list("v1", "events") if e["involvedObject"].get("name") == "ship"]
    assert {e["reason"] for e in events} >= {"WaitingForSource", "SourceFailed"}
    assert kube_api.client.list("batch/v1", "jobs", namespace="default") == []
    table = kubectl("get", "mex").stdout.splitlines()
    assert table[1].split()[:3] == ["ship", "False", "SourceFailed"]
