"""PUT, the four PATCH flavours, DELETE with finalizers, and the Status bodies of errors."""

from __future__ import annotations

import pytest
from support.kubeapi import KubeApiError

WIDGETS = "test.tuneforge.io/v1"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def _error(call, *args, **kwargs) -> KubeApiError:
    with pytest.raises(KubeApiError) as e:
        call(*args, **kwargs)
    return e.value


def test_not_found_is_a_status(widgets):
    error = _error(widgets.get, WIDGETS, "widgets", "nope")
    assert error.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'widgets.test.tuneforge.io "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "nope", "group": "test.tuneforge.io", "kind": "widgets"},
    }


def test_already_exists_is_a_status(kube_api):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    kube_api.client.create(cm)
    error = _error(kube_api.client.create, cm)
    assert (error.status, error.reason) == (409, "AlreadyExists")
    assert error.message == 'configmaps "c" already exists'
    assert error.body["details"] == {"name": "c", "kind": "configmaps"}


def test_unknown_urls_are_404_statuses(kube_api):
    error = _error(kube_api.client.request, "GET", "/apis/nothing.example/v1/things")
    assert (error.status, error.reason, error.body["kind"]) == (404, "NotFound", "Status")


def test_put_replaces_with_optimistic_concurrency(widgets, widget):
    created = widgets.create(widget("w1", labels={"a": "b"}))
    replaced = widgets.replace(
        {**created, "spec": {"size": 7}, "metadata": {**created["metadata"], "labels": {}}}
    )
    assert replaced["spec"] == {"size": 7, "color": "red"}
    assert replaced["metadata"].get("labels") in (None, {})
    assert replaced["metadata"]["generation"] == 2
    error = _error(widgets.replace, {**created, "spec": {"size": 8}})  # the old resourceVersion
    assert (error.status, error.reason) == (409, "Conflict")
    assert error.message == (
        'Operation cannot be fulfilled on widgets.test.tuneforge.io "w1": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert error.body["details"] == {"name": "w1", "group": "test.tuneforge.io", "kind": "widgets"}


def test_put_without_resource_version_is_unconditional(widgets, widget):
    widgets.create(widget("w1"))
    assert widgets.replace(widget("w1", size=2))["spec"]["size"] == 2


def test_put_of_a_missing_object_is_404(widgets, widget):
    assert _error(widgets.replace, widget("ghost")).status == 404


def test_put_with_another_name_is_400(widgets, widget):
    widgets.create(widget("w1"))
    path = "/apis/test.tuneforge.io/v1/namespaces/default/widgets/w1"
    error = _error(widgets.request, "PUT", path, body=widget("w2"))
    assert error.status == 400
    assert "does not match the name on the URL" in error.message


def test_merge_patch_with_a_stale_resource_version_conflicts(widgets, widget):
    created = widgets.create(widget("w1"))
    widgets.patch(WIDGETS, "widgets", "w1", {"spec": {"size": 4}})
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "spec": {"size": 5}}
    assert _error(widgets.patch, WIDGETS, "widgets", "w1", stale).reason == "Conflict"


def test_merge_patch_null_deletes_a_key(kube_api):
    kube_api.client.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    )
    assert kube_api.client.patch("v1", "configmaps", "c", {"data": {"a": None}})["data"] == {"b": "2"}


def test_json_patch_applies_operations(widgets, widget):
    widgets.create(widget("w1"))
    ops = [
        {"op": "add", "path": "/metadata/finalizers", "value": ["a/b"]},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "c/d"},
        {"op": "replace", "path": "/spec/size", "value": 6},
        {"op": "copy", "from": "/spec/color", "path": "/spec/note"},
    ]
    patched = widgets.patch(WIDGETS, "widgets", "w1", ops, content_type=JSON_PATCH)
    assert patched["metadata"]["finalizers"] == ["a/b", "c/d"]
    assert patched["spec"] == {"size": 6, "color": "red", "note": "red"}


def test_a_failed_json_patch_test_is_422(widgets, widget):
    widgets.create(widget("w1"))
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
    ]
    error = _error(widgets.patch, WIDGETS, "widgets", "w1", ops, content_type=JSON_PATCH)
    assert (error.status, error.reason) == (422, "Invalid")
    assert error.body["details"]["causes"][0]["field"] == "patch"
    assert "finalizers" not in widgets.get(WIDGETS, "widgets", "w1")["metadata"]


def test_strategic_merge_patch_merges_lists_by_key(kube_api, pod):
    body = pod("p")
    body["spec"]["containers"] = [
        {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
        {"name": "b", "image": "y"},
    ]
    kube_api.client.create(body)
    patch = {
        "metadata": {"finalizers": ["f/one"]},
        "spec": {
            "containers": [
                {"name": "a", "env": [{"name": "B", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
            ]
        },
    }
    patched = kube_api.client.patch("v1", "pods", "p", patch, content_type=STRATEGIC)
    (container,) = patched["spec"]["containers"]
    assert container["image"] == "x"
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    again = kube_api.client.patch(
        "v1", "pods", "p", {"metadata": {"finalizers": ["f/two"]}}, content_type=STRATEGIC
    )
    assert again["metadata"]["finalizers"] == ["f/one", "f/two"]


def test_strategic_merge_patch_is_refused_for_custom_resources(widgets, widget):
    widgets.create(widget("w1"))
    error = _error(widgets.patch, WIDGETS, "widgets", "w1", {"spec": {"size": 2}}, content_type=STRATEGIC)
    assert (error.status, error.reason) == (415, "UnsupportedMediaType")


def test_server_side_apply_creates_then_merges(widgets, widget):
    path = "/apis/test.tuneforge.io/v1/namespaces/default/widgets/w1"
    manifest = "apiVersion: test.tuneforge.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 2}\n"
    made = widgets._http.patch(
        path,
        content=manifest,
        params={"fieldManager": "t"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert made.status_code == 201
    again = widgets._http.patch(
        path,
        content=manifest.replace("size: 2", "size: 5"),
        params={"fieldManager": "t"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert again.status_code == 200 and again.json()["spec"]["size"] == 5


def test_delete_with_finalizers_waits_for_them(widgets, widget):
    created = widgets.create({**widget("w1"), "metadata": {"name": "w1", "finalizers": ["test/hold"]}})
    marked = widgets.delete(WIDGETS, "widgets", "w1")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["generation"] == created["metadata"]["generation"] + 1
    assert widgets.delete(WIDGETS, "widgets", "w1")["metadata"]["deletionTimestamp"], "deleting twice is fine"
    error = _error(
        widgets.patch, WIDGETS, "widgets", "w1", {"metadata": {"finalizers": ["test/hold", "test/new"]}}
    )
    assert error.status == 422 and "no new finalizers can be added" in error.message
    widgets.patch(WIDGETS, "widgets", "w1", {"metadata": {"finalizers": None}})
    assert not widgets.exists(WIDGETS, "widgets", "w1")


def test_deleting_a_built_in_answers_a_success_status(kube_api):
    made = kube_api.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    answer = kube_api.client.delete("v1", "configmaps", "c")
    assert answer == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "c", "kind": "configmaps", "uid": made["metadata"]["uid"]},
    }
    assert _error(kube_api.client.delete, "v1", "configmaps", "c").status == 404


def test_delete_preconditions(kube_api):
    kube_api.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    error = _error(
        kube_api.client.request,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c",
        body={"preconditions": {"uid": "not-it"}},
    )
    assert error.reason == "Conflict" and "Precondition failed: UID in precondition: not-it" in error.message


def test_delete_collection_by_label(kube_api):
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        kube_api.client.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"team": team}}}
        )
    kube_api.client.request(
        "DELETE", "/api/v1/namespaces/default/configmaps", params={"labelSelector": "team=x"}
    )
    assert [c["metadata"]["name"] for c in kube_api.client.list("v1", "configmaps", "default")] == ["c"]


def test_dry_run_stores_nothing(kube_api):
    answer = kube_api.client.request(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        params={"dryRun": "All"},
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
    )
    assert answer["metadata"]["name"] == "c"
    assert not kube_api.client.exists("v1", "configmaps", "c")


def test_list_pages_with_limit_and_continue(kube_api):
    for i in range(5):
        kube_api.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
    names, token = [], None
    while True:
        params = {"limit": "2", **({"continue": token} if token else {})}
        page = kube_api.client.request("GET", "/api/v1/namespaces/default/configmaps", params=params)
        assert page["kind"] == "ConfigMapList" and page["apiVersion"] == "v1"
        names += [c["metadata"]["name"] for c in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"c{i}" for i in range(5)]
