"""Deletion through ownerReferences: background cascade, foreground, orphan, CRD and namespace cleanup."""

from __future__ import annotations

import pytest
from support.kubeapi import KubeApiError
from support.waiting import wait_for

WIDGETS = "test.tuneforge.io/v1"


def _family(client, widget, job, pod):
    owner = client.create(widget("w1"))
    child = client.create(job("train", owner=owner))
    grandchild = client.create(pod("train-pod", owner=child))
    return owner, child, grandchild


def _gone(client, api_version, plural, name):
    return lambda: not client.exists(api_version, plural, name)


def test_deleting_an_owner_deletes_its_job_and_then_the_pods(widgets, widget, job, pod):
    _family(widgets, widget, job, pod)
    widgets.delete(WIDGETS, "widgets", "w1")
    wait_for(_gone(widgets, "batch/v1", "jobs", "train"), timeout=5, message="the Job was not collected")
    wait_for(_gone(widgets, "v1", "pods", "train-pod"), timeout=5, message="the Pod was not collected")


def test_foreground_deletion_waits_for_the_dependents(widgets, widget, job, owner_ref):
    owner = widgets.create(widget("w1"))
    held = job("held", owner=owner)
    held["metadata"]["finalizers"] = ["test/hold"]
    widgets.create(held)
    widgets.delete(WIDGETS, "widgets", "w1", propagation="Foreground")
    marked = wait_for(
        lambda: widgets.get("batch/v1", "jobs", "held")["metadata"].get("deletionTimestamp"),
        timeout=5,
        message="the dependent was not deleted",
    )
    assert marked
    owner_now = widgets.get(WIDGETS, "widgets", "w1")
    assert "foregroundDeletion" in owner_now["metadata"]["finalizers"]
    widgets.patch("batch/v1", "jobs", "held", {"metadata": {"finalizers": None}})
    wait_for(_gone(widgets, WIDGETS, "widgets", "w1"), timeout=5, message="the owner outlived its dependents")


def test_orphan_deletion_keeps_the_dependents_without_the_reference(widgets, widget, job):
    owner = widgets.create(widget("w1"))
    widgets.create(job("train", owner=owner))
    widgets.delete(WIDGETS, "widgets", "w1", propagation="Orphan")
    wait_for(_gone(widgets, WIDGETS, "widgets", "w1"), timeout=5, message="the owner was not deleted")
    assert "ownerReferences" not in widgets.get("batch/v1", "jobs", "train")["metadata"]


def test_batch_v1_jobs_orphan_their_pods_by_default(kube_api, job, pod):
    client = kube_api.client
    default = client.create(job("default-policy"))
    client.create(pod("kept", owner=default))
    client.delete("batch/v1", "jobs", "default-policy")
    wait_for(
        _gone(client, "batch/v1", "jobs", "default-policy"), timeout=5, message="the Job was not deleted"
    )
    wait_for(
        lambda: "ownerReferences" not in client.get("v1", "pods", "kept")["metadata"],
        timeout=5,
        message="the orphaned Pod kept its owner reference",
    )
    background = client.create(job("background"))
    client.create(pod("collected", owner=background))
    client.delete("batch/v1", "jobs", "background", propagation="Background")
    wait_for(_gone(client, "v1", "pods", "collected"), timeout=5, message="the Pod was not collected")


def test_a_dependent_with_another_live_owner_only_loses_the_reference(kube_api, owner_ref):
    client = kube_api.client
    a = client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    b = client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}})
    client.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "ownerReferences": [owner_ref(a), owner_ref(b)]},
        }
    )
    client.delete("v1", "configmaps", "a")
    wait_for(
        lambda: [r["name"] for r in client.get("v1", "secrets", "s")["metadata"]["ownerReferences"]] == ["b"],
        timeout=5,
        message="the dangling reference was not removed",
    )


def test_an_object_whose_owner_does_not_exist_is_collected(kube_api):
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "ghost",
        "uid": "00000000-0000-4000-8000-000000000000",
    }
    kube_api.client.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "ownerReferences": [ghost]}}
    )
    wait_for(_gone(kube_api.client, "v1", "secrets", "s"), timeout=5, message="the orphan was not collected")


def test_deleting_a_namespace_deletes_its_contents(kube_api):
    client = kube_api.client
    client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team"}})
    client.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "held", "namespace": "team", "finalizers": ["test/hold"]},
        }
    )
    assert client.delete("v1", "namespaces", "team")["status"]["phase"] == "Terminating"
    wait_for(
        lambda: not client.exists("v1", "configmaps", "c", "team"),
        timeout=5,
        message="the namespace's contents stayed",
    )
    with pytest.raises(KubeApiError) as e:
        client.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "team"}}
        )
    assert e.value.status == 403 and "is being terminated" in e.value.message
    client.patch("v1", "configmaps", "held", {"metadata": {"finalizers": None}}, namespace="team")
    wait_for(_gone(client, "v1", "namespaces", "team"), timeout=5, message="the namespace was not deleted")


def test_deleting_a_crd_deletes_its_objects_and_stops_serving_them(widgets, widget):
    widgets.create(widget("w1"))
    widgets.delete("apiextensions.k8s.io/v1", "customresourcedefinitions", "widgets.test.tuneforge.io")
    wait_for(
        _gone(widgets, "apiextensions.k8s.io/v1", "customresourcedefinitions", "widgets.test.tuneforge.io"),
        timeout=5,
        message="the CRD was not deleted",
    )
    with pytest.raises(KubeApiError) as e:
        widgets.request("GET", "/apis/test.tuneforge.io/v1/namespaces/default/widgets")
    assert e.value.status == 404
