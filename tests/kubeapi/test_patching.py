"""The patch functions on their own: RFC 7386, RFC 6902 and the strategic merge subset."""

from __future__ import annotations

import pytest
from support.kubeapi.patching import PatchError, json_patch, merge_patch, strategic_merge_patch


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386 appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch(target, patch, result):
    assert merge_patch(target, patch) == result


def test_merge_patch_leaves_its_inputs_alone():
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


def test_json_patch_operations_and_escapes():
    doc = {"a/b": 1, "m~n": 2, "list": [1, 2, 3]}
    out = json_patch(
        doc,
        [
            {"op": "replace", "path": "/a~1b", "value": 10},
            {"op": "remove", "path": "/m~0n"},
            {"op": "add", "path": "/list/0", "value": 0},
            {"op": "move", "from": "/list/3", "path": "/last"},
            {"op": "test", "path": "/last", "value": 3},
        ],
    )
    assert out == {"a/b": 10, "list": [0, 1, 2], "last": 3}
    assert doc["list"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ([{"op": "test", "path": "/a", "value": 2}], "testing value /a failed"),
        ([{"op": "remove", "path": "/missing"}], "Unable to remove nonexistent key: missing"),
        ([{"op": "replace", "path": "/x/y", "value": 1}], "doc is missing path: /x/y"),
        ([{"op": "add", "path": "/l/5", "value": 1}], "out of bounds"),
        ([{"op": "frobnicate", "path": "/a"}], "Unexpected kind: frobnicate"),
    ],
)
def test_json_patch_errors_say_where(ops, message):
    with pytest.raises(PatchError, match=message):
        json_patch({"a": 1, "l": []}, ops)


def test_strategic_merge_patch_directives():
    target = {
        "metadata": {"finalizers": ["a", "b"], "ownerReferences": [{"uid": "1", "name": "x"}]},
        "spec": {"volumes": [{"name": "v1", "emptyDir": {}}], "tolerations": [{"key": "k"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }
    patch = {
        "$setElementOrder/volumes": [{"name": "v1"}],
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "ownerReferences": [{"uid": "2", "name": "y"}],
        },
        "spec": {
            "volumes": [{"name": "v1", "$patch": "replace", "secret": {"secretName": "s"}}],
            "tolerations": [{"key": "other"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Done", "status": "False"}]},
    }
    out = strategic_merge_patch(target, patch)
    assert out["metadata"] == {
        "finalizers": ["b"],
        "ownerReferences": [{"uid": "1", "name": "x"}, {"uid": "2", "name": "y"}],
    }
    assert out["spec"]["volumes"] == [{"name": "v1", "secret": {"secretName": "s"}}]
    assert out["spec"]["tolerations"] == [{"key": "other"}], "lists without a merge key are replaced"
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "Done", "status": "False"},
    ]
