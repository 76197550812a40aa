"""Label and field selectors: parsing, and filtering of lists."""

from __future__ import annotations

import pytest
from support.kubeapi import KubeApiError
from support.kubeapi.errors import ApiError
from support.kubeapi.selectors import parse_field_selector, parse_label_selector

LABELS = {"app": "web", "tier": "front", "n": "5"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (db, web)", True),
        ("app notin (db,web)", False),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("app=web,tier in (front),!missing", True),
        ("app=web,tier=back", False),
        ("n>4", True),
        ("n<5", False),
        ("", True),
    ],
)
def test_label_selector_semantics(selector, matches):
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize("selector", ["app=we b", "app in ()", "=x", "a b c", "n>x"])
def test_bad_label_selectors_are_400(selector):
    with pytest.raises(ApiError) as e:
        parse_label_selector(selector)
    assert e.value.code == 400 and "unable to parse requirement" in e.value.message


def test_field_selector_semantics():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}, "spec": {}}
    assert parse_field_selector("metadata.name=p,status.phase!=Failed").matches(pod)
    assert not parse_field_selector("status.phase==Pending").matches(pod)
    assert parse_field_selector("spec.nodeName=").matches(pod)
    assert parse_field_selector(r"metadata.name=a\,b").requirements[0].value == "a,b"
    with pytest.raises(ApiError):
        parse_field_selector("nonsense")


def test_lists_filter_by_labels(kube_api, pod):
    for name, labels in (("a", {"app": "web"}), ("b", {"app": "db"}), ("c", {})):
        kube_api.client.create(pod(name, labels=labels))

    def names(selector):
        return [p["metadata"]["name"] for p in kube_api.client.list("v1", "pods", label_selector=selector)]

    assert names("app=web") == ["a"]
    assert names("app") == ["a", "b"]
    assert names("!app") == ["c"]
    assert names("app notin (web)") == ["b", "c"]


def test_lists_filter_by_fields(kube_api, pod):
    kube_api.client.create(pod("a"))
    kube_api.client.create(pod("b"))
    kube_api.client.create({**pod("c"), "metadata": {"name": "c", "namespace": "other"}})
    kube_api.client.patch("v1", "pods", "b", {"status": {"phase": "Running"}}, subresource="status")

    def field(selector):
        return [p["metadata"]["name"] for p in kube_api.client.list("v1", "pods", field_selector=selector)]

    assert field("status.phase=Running") == ["b"]
    assert field("metadata.name=a") == ["a"]
    assert field("metadata.namespace!=default") == ["c"]


def test_event_field_selectors(kube_api):
    for name, involved in (("e1", "w1"), ("e2", "w2")):
        kube_api.client.create(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name},
                "involvedObject": {"kind": "Widget", "name": involved, "namespace": "default"},
                "reason": "Made",
                "message": "m",
                "type": "Normal",
            }
        )
    found = kube_api.client.list("v1", "events", "default", field_selector="involvedObject.name=w2")
    assert [e["metadata"]["name"] for e in found] == ["e2"]


def test_a_bad_selector_in_a_request_is_400(kube_api):
    with pytest.raises(KubeApiError) as e:
        kube_api.client.list("v1", "pods", label_selector="a in (")
    assert e.value.status == 400
