"""Watch streams: resume from a resourceVersion without losing or repeating events, selectors,
bookmarks, timeouts, initial events and 410 Gone."""

from __future__ import annotations

import itertools
import json
import threading
import time

from support.kubeapi import KubeApiServer

WIDGETS = "test.tuneforge.io/v1"


def _take(events, count):
    """The first `count` events of a stream, which is then closed (no waiting for its timeout)."""
    taken = list(itertools.islice(events, count))
    events.close()
    return taken


def _summary(events):
    return [(e["type"], e["object"]["metadata"].get("name")) for e in events if e["type"] != "BOOKMARK"]


def test_resuming_from_a_resource_version_sees_exactly_the_later_events(widgets, widget):
    widgets.create(widget("before"))
    since = widgets.list(WIDGETS, "widgets")[0]["metadata"]["resourceVersion"]
    widgets.create(widget("w1"))
    widgets.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "noise"}})
    widgets.patch(WIDGETS, "widgets", "w1", {"spec": {"size": 4}})
    widgets.delete(WIDGETS, "widgets", "before")
    events = _take(widgets.watch(WIDGETS, "widgets", "default", resource_version=since), 3)
    assert _summary(events) == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "before")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events if e["type"] != "BOOKMARK"]
    assert versions == sorted(versions) and all(v > int(since) for v in versions)


def test_watch_without_resource_version_starts_with_the_current_state(widgets, widget):
    widgets.create(widget("a"))
    widgets.create(widget("b"))
    events = widgets.watch(WIDGETS, "widgets", "default", timeout_seconds=3)
    assert _summary([next(events), next(events)]) == [("ADDED", "a"), ("ADDED", "b")]
    threading.Timer(0.2, lambda: widgets.patch(WIDGETS, "widgets", "a", {"spec": {"size": 9}})).start()
    modified = next(events)
    assert (modified["type"], modified["object"]["spec"]["size"]) == ("MODIFIED", 9)
    events.close()


def test_no_event_is_lost_or_repeated_under_concurrent_writes(kube_api):
    client = kube_api.client
    client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"n": "0"}})
    start = client.get("v1", "configmaps", "c")["metadata"]["resourceVersion"]

    def writer() -> None:
        for i in range(1, 61):
            client.patch("v1", "configmaps", "c", {"data": {"n": str(i)}})

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[int] = []
    rv = start
    # Watches that each stop after a few events and resume where the last one stopped, as informers do.
    while len(seen) < 60:
        for event in _take(
            client.watch("v1", "configmaps", "default", resource_version=rv), min(7, 60 - len(seen))
        ):
            rv = event["object"]["metadata"]["resourceVersion"]
            seen.append(int(event["object"]["data"]["n"]))
    thread.join()
    assert seen == list(range(1, 61))


def test_label_selector_transitions_become_added_and_deleted(widgets, widget):
    widgets.create(widget("w1", labels={"team": "a"}))
    since = widgets.get(WIDGETS, "widgets", "w1")["metadata"]["resourceVersion"]
    widgets.patch(WIDGETS, "widgets", "w1", {"metadata": {"labels": {"team": "b"}}})
    widgets.patch(WIDGETS, "widgets", "w1", {"spec": {"size": 5}})
    widgets.patch(WIDGETS, "widgets", "w1", {"metadata": {"labels": {"team": "a"}}})
    widgets.patch(WIDGETS, "widgets", "w1", {"spec": {"size": 6}})
    events = widgets.watch(WIDGETS, "widgets", "default", resource_version=since, label_selector="team=a")
    assert _summary(_take(events, 3)) == [("DELETED", "w1"), ("ADDED", "w1"), ("MODIFIED", "w1")]


def test_field_selector_by_name(widgets, widget):
    since = str(widgets.request("GET", "/apis/test.tuneforge.io/v1/widgets")["metadata"]["resourceVersion"])
    widgets.create(widget("a"))
    widgets.create(widget("b"))
    events = widgets.watch(WIDGETS, "widgets", None, resource_version=since, field_selector="metadata.name=b")
    assert _summary(_take(events, 1)) == [("ADDED", "b")]


def test_timeout_ends_the_stream_with_a_bookmark(widgets):
    rv = widgets.request("GET", "/apis/test.tuneforge.io/v1/widgets")["metadata"]["resourceVersion"]
    began = time.monotonic()
    events = list(
        widgets.watch(
            WIDGETS, "widgets", "default", resource_version=rv, timeout_seconds=1, allowWatchBookmarks="true"
        )
    )
    assert 0.9 < time.monotonic() - began < 3
    assert [e["type"] for e in events] == ["BOOKMARK"]
    assert events[0]["object"] == {
        "kind": "Widget",
        "apiVersion": WIDGETS,
        "metadata": {"resourceVersion": rv},
    }


def test_initial_events_end_with_an_annotated_bookmark(widgets, widget):
    widgets.create(widget("a"))
    events = widgets.watch(
        WIDGETS,
        "widgets",
        "default",
        timeout_seconds=2,
        sendInitialEvents="true",
        resourceVersionMatch="NotOlderThan",
        allowWatchBookmarks="true",
    )
    added, bookmark = next(events), next(events)
    events.close()
    assert added["type"] == "ADDED"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_too_old_resource_versions_get_410(tmp_path):
    with KubeApiServer(tmp_path, history=5) as server:
        first = server.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        for i in range(20):
            server.client.patch("v1", "configmaps", "c", {"data": {"n": str(i)}})
        (event,) = server.client.watch(
            "v1",
            "configmaps",
            "default",
            resource_version=first["metadata"]["resourceVersion"],
            timeout_seconds=1,
        )
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


def test_watch_responses_are_json_lines(widgets, widget):
    widgets.create(widget("a"))
    path = "/apis/test.tuneforge.io/v1/namespaces/default/widgets"
    with widgets._http.stream("GET", path, params={"watch": "true"}) as response:
        assert response.headers["content-type"] == "application/json"
        line = next(response.iter_lines())
    assert json.loads(line)["type"] == "ADDED"
