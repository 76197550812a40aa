"""Server-side printing (meta.k8s.io/v1 Table) and the JSONPath subset behind printer columns."""

from __future__ import annotations

import re

import pytest
from support.kubeapi import jsonpath
from support.kubeapi.tables import human_duration

TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
    "application/json"
)
OBJ = {
    "metadata": {"name": "x", "labels": {"a.b/c": "d"}},
    "status": {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "Waiting"},
            {"type": "Succeeded", "status": "True", "reason": "Done", "n": 3},
        ]
    },
    "spec": {"items": [{"name": "a"}, {"name": "b"}]},
}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        (".metadata.name", ["x"]),
        ("{.metadata.name}", ["x"]),
        ('.status.conditions[?(@.type=="Succeeded")].reason', ["Done"]),
        (".status.conditions[?(@.type=='Ready')].status", ["False"]),
        (".status.conditions[?(@.n>2)].type", ["Succeeded"]),
        (".status.conditions[?(@.n)].reason", ["Done"]),
        (".spec.items[-1].name", ["b"]),
        (".spec.items[*].name", ["a", "b"]),
        ("..name", ["x", "a", "b"]),
        (".metadata.labels['a.b/c']", ["d"]),
        (".status.missing", []),
    ],
)
def test_jsonpath(path, found):
    assert jsonpath.find(path, OBJ) == found


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (10 * 3600, "10h"),
        (3 * 86400 + 3600, "3d1h"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_human_durations(seconds, text):
    assert human_duration(seconds) == text


def _table(client, path, **params):
    response = client._http.get(path, headers={"Accept": TABLE}, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_custom_resources_print_their_columns(widgets, widget):
    widgets.create(widget("w1", size=4, color="blue"))
    widgets.patch(
        "test.tuneforge.io/v1",
        "widgets",
        "w1",
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Shiny"}]}},
        subresource="status",
    )
    table = _table(widgets, "/apis/test.tuneforge.io/v1/namespaces/default/widgets")
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", "string", 0),
        ("Size", "integer", 0),
        ("Color", "string", 0),
        ("State", "string", 0),
        ("Age", "date", 0),
        ("Note", "string", 1),
    ]
    (row,) = table["rows"]
    assert row["cells"][:4] == ["w1", 4, "blue", "Shiny"] and row["cells"][5] is None
    assert re.fullmatch(r"\d+s", row["cells"][4])
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "w1"
    assert table["metadata"]["resourceVersion"]


def test_single_objects_and_full_row_objects(widgets, widget):
    widgets.create(widget("w1"))
    table = _table(
        widgets, "/apis/test.tuneforge.io/v1/namespaces/default/widgets/w1", includeObject="Object"
    )
    (row,) = table["rows"]
    assert row["object"]["spec"] == {"size": 3, "color": "red"}


def test_built_ins_print_name_kind_columns_and_age(kube_api, pod):
    kube_api.client.create(pod("p"))
    table = _table(kube_api.client, "/api/v1/namespaces/default/pods")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert table["rows"][0]["cells"][:4] == ["p", "0/1", "Pending", "0"]


def test_crds_without_printer_columns_print_name_and_age(kube_api):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.test.tuneforge.io"},
        "spec": {
            "group": "test.tuneforge.io",
            "scope": "Cluster",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    kube_api.client.create(crd)
    kube_api.client.create({"apiVersion": "test.tuneforge.io/v1", "kind": "Thing", "metadata": {"name": "t"}})
    table = _table(kube_api.client, "/apis/test.tuneforge.io/v1/things")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    name, age = table["rows"][0]["cells"]
    assert name == "t" and re.fullmatch(r"\d+s", age)
