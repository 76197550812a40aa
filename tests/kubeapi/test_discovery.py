"""CRDs register their resources in discovery (legacy and aggregated) and get the controllers' status."""

from __future__ import annotations

import copy

import pytest
from support.kubeapi import KubeApiError


def _entries(client, path):
    return {r["name"]: r for r in client.request("GET", path)["resources"]}


def test_a_crd_is_established_with_its_names(widgets):
    crd = widgets.get("apiextensions.k8s.io/v1", "customresourcedefinitions", "widgets.test.tuneforge.io")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in crd["status"]["conditions"]}
    assert conditions == {
        "NamesAccepted": ("True", "NoConflicts"),
        "Established": ("True", "InitialNamesAccepted"),
    }
    assert crd["status"]["acceptedNames"]["shortNames"] == ["wdg"]
    assert crd["status"]["storedVersions"] == ["v1"]


def test_crd_resources_are_discoverable(widgets):
    groups = {g["name"]: g for g in widgets.request("GET", "/apis")["groups"]}
    assert groups["test.tuneforge.io"]["preferredVersion"] == {
        "groupVersion": "test.tuneforge.io/v1",
        "version": "v1",
    }
    group = widgets.request("GET", "/apis/test.tuneforge.io")
    assert (group["kind"], group["name"]) == ("APIGroup", "test.tuneforge.io")
    entries = _entries(widgets, "/apis/test.tuneforge.io/v1")
    assert entries["widgets"] == {
        "name": "widgets",
        "singularName": "widget",
        "namespaced": True,
        "kind": "Widget",
        "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
        "shortNames": ["wdg"],
        "categories": ["gadgets"],
    }
    status = entries["widgets/status"]
    assert (status["kind"], status["verbs"]) == ("Widget", ["get", "patch", "update"])
    assert "shortNames" not in status and "categories" not in status, "subresources have no short names"


def test_aggregated_discovery(widgets):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    response = widgets._http.get("/apis", headers={"Accept": accept})
    assert (
        response.headers["content-type"]
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    items = {i["metadata"]["name"]: i for i in response.json()["items"]}
    (version,) = items["test.tuneforge.io"]["versions"]
    (resource,) = version["resources"]
    assert resource["resource"] == "widgets" and resource["scope"] == "Namespaced"
    assert resource["subresources"] == [
        {
            "subresource": "status",
            "verbs": ["get", "patch", "update"],
            "responseKind": {"group": "test.tuneforge.io", "version": "v1", "kind": "Widget"},
        }
    ]
    core = widgets._http.get("/api", headers={"Accept": accept}).json()
    assert [i["metadata"]["name"] for i in core["items"]] == [""]


def test_built_in_resources_are_discoverable(kube_api):
    core = _entries(kube_api.client, "/api/v1")
    assert (
        core["pods"]["shortNames"] == ["po"]
        and "pods/status" in core
        and core["namespaces"]["namespaced"] is False
    )
    batch = _entries(kube_api.client, "/apis/batch/v1")
    assert batch["jobs"]["kind"] == "Job" and "jobs/status" in batch
    assert kube_api.client.request("GET", "/version")["gitVersion"] == "v1.37.1"


def test_a_second_served_version_shares_the_objects(kube_api, widgets_crd):
    crd = widgets_crd
    v2 = copy.deepcopy(crd["spec"]["versions"][0])
    v2.update(name="v2", storage=False)
    crd["spec"]["versions"].append(v2)
    kube_api.client.create(crd)
    kube_api.client.create(
        {
            "apiVersion": "test.tuneforge.io/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1},
        }
    )
    assert kube_api.client.get("test.tuneforge.io/v2", "widgets", "w")["apiVersion"] == "test.tuneforge.io/v2"
    versions = [v["version"] for v in kube_api.client.request("GET", "/apis/test.tuneforge.io")["versions"]]
    assert versions == ["v2", "v1"]


def test_invalid_crds_are_refused(kube_api, widgets_crd):
    crd = widgets_crd
    crd["metadata"]["name"] = "gizmos.test.tuneforge.io"
    with pytest.raises(KubeApiError) as e:
        kube_api.client.create(crd)
    assert e.value.status == 422
    assert (
        'metadata.name: Invalid value: "gizmos.test.tuneforge.io": must be spec.names.plural+"."+spec.group'
        in e.value.message
    )


def test_openapi_v3_serves_the_crd_schema(widgets):
    index = widgets.request("GET", "/openapi/v3")["paths"]
    assert {"api/v1", "apis/batch/v1", "apis/test.tuneforge.io/v1"} <= set(index)
    doc = widgets.request("GET", index["apis/test.tuneforge.io/v1"]["serverRelativeURL"])
    schema = doc["components"]["schemas"]["io.tuneforge.test.v1.Widget"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "test.tuneforge.io", "version": "v1", "kind": "Widget"}
    ]
    assert (
        schema["properties"]["spec"]["properties"]["size"]["description"]
        == "How big the widget is, from 1 to 10."
    )
