"""Watch streams: `?watch=true` with resourceVersion, selectors, bookmarks and timeouts.

- no resourceVersion (or "0"): synthetic ADDED events for the current
  objects, then every change; with `sendInitialEvents=true` the initial
  events end with a BOOKMARK annotated `k8s.io/initial-events-end`;
- resourceVersion=N: exactly the changes after N, from the store's log (410
  Gone as an ERROR event when N is older than the retained history);
- selectors see transitions: an object that starts matching arrives as
  ADDED, one that stops matching as DELETED;
- `timeoutSeconds` ends the stream; `allowWatchBookmarks` adds a BOOKMARK
  every `bookmark_interval` seconds and one just before a timeout ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from support.kubeapi.apiserver import ApiServer, in_version
from support.kubeapi.errors import bad_request, gone
from support.kubeapi.resources import ResourceType
from support.kubeapi.selectors import FieldSelector, LabelSelector
from support.kubeapi.store import Event, Expired


@dataclass(frozen=True)
class WatchRequest:
    rtype: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str | None = None
    send_initial_events: bool | None = None
    bookmarks: bool = False
    timeout: float | None = None


def _matches(req: WatchRequest, obj: dict[str, Any] | None) -> bool:
    if obj is None:
        return False
    meta = obj.get("metadata", {})
    if req.namespace and req.rtype.namespaced and meta.get("namespace") != req.namespace:
        return False
    return req.labels.matches(meta.get("labels")) and req.fields.matches(obj)


def visible_type(req: WatchRequest, event: Event) -> str | None:
    """The event type this watch sees for `event`, or None when the event is not for it."""
    if (event.group, event.plural) != req.rtype.key:
        return None
    now_matches = _matches(req, event.obj)
    if event.type != "MODIFIED":
        return event.type if now_matches else None
    was_matching = _matches(req, event.old)
    if now_matches:
        return "MODIFIED" if was_matching else "ADDED"
    return "DELETED" if was_matching else None


def bookmark(rtype: ResourceType, rv: int, *, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta},
    }


def expired(rv: int) -> dict[str, Any]:
    return {"type": "ERROR", "object": gone(f"too old resource version: {rv}").status_body()}


def check(req: WatchRequest) -> None:
    """Raises the 400 a bad watch request gets, before any event is sent."""
    _start_rv(req)


def _start_rv(req: WatchRequest) -> int | None:
    """The resourceVersion to resume after, or None to start from the current state."""
    rv = req.resource_version
    if req.send_initial_events or not rv or rv == "0":
        return None
    try:
        return int(rv)
    except ValueError:
        raise bad_request(f'invalid resource version: "{rv}"') from None


async def stream(
    api: ApiServer,
    req: WatchRequest,
    *,
    stopping: asyncio.Event,
    bookmark_interval: float,
    client_alive: Callable[[], bool],
) -> AsyncGenerator[dict[str, Any], None]:
    """Yields watch events (`{"type", "object"}`) until timeout, client exit or server stop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.timeout if req.timeout else None
    store = api.store
    last = _start_rv(req)
    if last is None:
        last = store.rv
        current = [o for o in store.items(req.rtype.group, req.rtype.plural) if _matches(req, o)]
        current.sort(key=lambda o: int(o["metadata"]["resourceVersion"]))
        if req.send_initial_events is not False:
            for obj in current:
                yield {"type": "ADDED", "object": in_version(obj, req.rtype)}
        if req.send_initial_events and req.bookmarks:
            yield bookmark(req.rtype, last, initial_end=True)
    next_bookmark = loop.time() + bookmark_interval
    while not stopping.is_set() and client_alive():
        wakeup = store.wakeup()
        seen = store.rv
        try:
            events = store.events_after(last)
        except Expired:
            yield expired(last)
            return
        last = seen
        for event in events:
            kind = visible_type(req, event)
            if kind:
                yield {"type": kind, "object": in_version(event.obj, req.rtype)}
        now = loop.time()
        if deadline is not None and now >= deadline:
            if req.bookmarks:
                yield bookmark(req.rtype, last)
            return
        if req.bookmarks and now >= next_bookmark:
            yield bookmark(req.rtype, last)
            next_bookmark = now + bookmark_interval
        if events:
            continue
        wait = min(1.0, next_bookmark - now if req.bookmarks else 1.0)
        if deadline is not None:
            wait = min(wait, deadline - now)
        try:
            await asyncio.wait_for(wakeup.wait(), timeout=max(wait, 0.001))
        except TimeoutError:
            pass  # at least once a second: is the client still there, is the server stopping?
