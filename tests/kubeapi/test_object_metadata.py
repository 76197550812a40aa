"""The server fills and guards metadata, generation and status as kube-apiserver does."""

from __future__ import annotations

import re

import pytest
from support.kubeapi import KubeApiError

WIDGETS = "test.tuneforge.io/v1"


def test_create_fills_the_server_owned_metadata(widgets, widget):
    created = widgets.create(widget("w1"))
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", meta["uid"])
    assert meta["resourceVersion"].isdigit()
    assert meta["generation"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert widgets.get(WIDGETS, "widgets", "w1") == created


def test_kind_and_api_version_are_filled_in_and_checked(kube_api):
    cm = kube_api.client.request(
        "POST", "/api/v1/namespaces/default/configmaps", body={"metadata": {"name": "c"}}
    )
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    with pytest.raises(KubeApiError) as e:
        kube_api.client.request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            body={"kind": "Secret", "metadata": {"name": "d"}},
        )
    assert e.value.status == 400
    assert "kind in the data (Secret) does not match the expected kind (ConfigMap)" in e.value.message


def test_generate_name_appends_a_random_suffix(kube_api):
    made = [
        kube_api.client.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}}
        )
        for _ in range(3)
    ]
    names = {m["metadata"]["name"] for m in made}
    assert len(names) == 3
    assert all(re.fullmatch(r"cfg-[a-z0-9]{5}", n) for n in names)


def test_namespaces_appear_on_first_use(kube_api):
    kube_api.client.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a"}}
    )
    ns = kube_api.client.get("v1", "namespaces", "team-a")
    assert ns["status"]["phase"] == "Active"
    assert {n["metadata"]["name"] for n in kube_api.client.list("v1", "namespaces")} >= {
        "default",
        "kube-system",
        "team-a",
    }


def test_resource_versions_grow_across_all_resources(kube_api):
    client = kube_api.client
    a = client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    b = client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}})
    a2 = client.patch("v1", "configmaps", "a", {"data": {"k": "v"}})
    versions = [int(o["metadata"]["resourceVersion"]) for o in (a, b, a2)]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_generation_counts_spec_changes_only(widgets, widget):
    widgets.create(widget("w1"))
    labelled = widgets.patch(WIDGETS, "widgets", "w1", {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1
    status = widgets.patch(WIDGETS, "widgets", "w1", {"status": {"message": "hi"}}, subresource="status")
    assert status["metadata"]["generation"] == 1
    changed = widgets.patch(WIDGETS, "widgets", "w1", {"spec": {"size": 4}})
    assert changed["metadata"]["generation"] == 2


def test_generation_without_status_subresource_counts_everything_but_metadata(kube_api):
    client = kube_api.client
    client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
    assert (
        client.patch("v1", "configmaps", "c", {"metadata": {"labels": {"x": "y"}}})["metadata"]["generation"]
        == 1
    )
    assert client.patch("v1", "configmaps", "c", {"data": {"a": "2"}})["metadata"]["generation"] == 2


def test_status_subresource_rules(widgets, widget):
    created = widgets.create({**widget("w1"), "status": {"message": "set by the client"}})
    assert "status" not in created, "status is dropped on create"
    widgets.patch(WIDGETS, "widgets", "w1", {"status": {"message": "from status"}}, subresource="status")
    main = widgets.patch(WIDGETS, "widgets", "w1", {"spec": {"size": 5}, "status": {"message": "ignored"}})
    assert main["status"] == {"message": "from status"}
    assert main["spec"]["size"] == 5
    via_status = widgets.patch(
        WIDGETS,
        "widgets",
        "w1",
        {"spec": {"size": 9}, "metadata": {"labels": {"ignored": "yes"}}, "status": {"message": "new"}},
        subresource="status",
    )
    assert via_status["spec"]["size"] == 5
    assert "labels" not in via_status["metadata"]
    assert via_status["status"] == {"message": "new"}


def test_a_no_op_update_writes_nothing(widgets, widget):
    created = widgets.create(widget("w1"))
    same = widgets.patch(WIDGETS, "widgets", "w1", {"spec": {"size": 3}})
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_server_owned_metadata_cannot_be_changed(widgets, widget):
    created = widgets.create(widget("w1"))
    patched = widgets.patch(
        WIDGETS,
        "widgets",
        "w1",
        {
            "metadata": {
                "uid": "forged",
                "creationTimestamp": "2000-01-01T00:00:00Z",
                "generation": 40,
                "labels": {"a": "b"},
            }
        },
    )
    for field in ("uid", "creationTimestamp", "generation"):
        assert patched["metadata"][field] == created["metadata"][field]


def test_resource_version_must_be_empty_on_create(widgets, widget):
    body = widget("w1")
    body["metadata"]["resourceVersion"] = "5"
    with pytest.raises(KubeApiError) as e:
        widgets.create(body)
    assert (e.value.status, e.value.message) == (
        400,
        "resourceVersion should not be set on objects to be created",
    )


@pytest.mark.parametrize("name", ["Upper", "under_score", "-dash", "x" * 254])
def test_names_must_be_dns_subdomains(kube_api, name):
    with pytest.raises(KubeApiError) as e:
        kube_api.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
    assert e.value.status == 422
    assert e.value.body["details"]["causes"][0]["field"] == "metadata.name"
    assert "a lowercase RFC 1123 subdomain" in e.value.message


def test_a_name_is_required(kube_api):
    with pytest.raises(KubeApiError) as e:
        kube_api.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})
    assert (
        e.value.message
        == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_secret_string_data_is_folded_into_data(kube_api):
    secret = kube_api.client.create(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "abc"}}
    )
    assert secret["data"] == {"token": "YWJj"}
    assert "stringData" not in secret
    assert secret["type"] == "Opaque"


def test_jobs_get_their_selector_and_pod_labels(kube_api, job):
    created = kube_api.client.create(job("train"))
    uid = created["metadata"]["uid"]
    assert created["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = created["spec"]["template"]["metadata"]["labels"]
    assert labels["job-name"] == "train" and labels["batch.kubernetes.io/controller-uid"] == uid
    assert (created["spec"]["completions"], created["spec"]["backoffLimit"]) == (1, 6)


def test_job_validation_names_the_field(kube_api, job):
    bad = job("train")
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(KubeApiError) as e:
        kube_api.client.create(bad)
    assert e.value.status == 422
    assert e.value.message == (
        'Job.batch "train" is invalid: spec.template.spec.restartPolicy: Unsupported value: '
        '"Always": supported values: "OnFailure", "Never"'
    )


def test_job_template_is_immutable(kube_api, job):
    kube_api.client.create(job("train"))
    with pytest.raises(KubeApiError) as e:
        kube_api.client.patch(
            "batch/v1",
            "jobs",
            "train",
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}},
            content_type="application/strategic-merge-patch+json",
        )
    assert e.value.status == 422
    assert "spec.template: Invalid value: field is immutable" in e.value.message
    suspended = kube_api.client.patch("batch/v1", "jobs", "train", {"spec": {"suspend": True}})
    assert suspended["spec"]["suspend"] is True


def test_pods_start_pending(kube_api, pod):
    assert kube_api.client.create(pod("p"))["status"] == {"phase": "Pending"}
