"""The object store: objects, one cluster-wide resourceVersion, and the event log.

Like etcd behind a real API server, every write takes the next
resourceVersion, and every change is appended to one ordered log that the
watches read from: a watch started at resourceVersion N sees exactly the
events after N, none lost and none twice. The log keeps the latest
`history` events; a watch from before that gets 410 Gone.

All methods run on the server's event loop thread and never await, so a
write and its event are atomic with respect to every reader.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# (group, plural, namespace or "", name)
Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Event:
    rv: int
    group: str
    plural: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None

    @property
    def namespace(self) -> str:
        return str(self.obj.get("metadata", {}).get("namespace") or "")


class Expired(Exception):
    """The requested resourceVersion is older than the retained history."""


class Store:
    def __init__(self, *, first_rv: int = 1000, history: int = 50_000) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._rv = first_rv
        self._history = history
        self._log: list[Event] = []
        self._log_rvs: list[int] = []
        # The rv up to which history was dropped: watches from before it are expired.
        self._oldest_rv = first_rv
        self._wakeup = asyncio.Event()

    @property
    def rv(self) -> int:
        return self._rv

    def get(self, key: Key) -> dict[str, Any] | None:
        return self._objects.get(key)

    def items(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            obj
            for (g, p, ns, _), obj in self._objects.items()
            if g == group and p == plural and (namespace is None or ns == namespace)
        ]

    def all(self) -> Iterator[tuple[Key, dict[str, Any]]]:
        yield from list(self._objects.items())

    def write(
        self, key: Key, obj: dict[str, Any], event_type: str, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Stores `obj` (ADDED/MODIFIED) or drops it (DELETED) under the next resourceVersion."""
        self._rv += 1
        obj = {**obj, "metadata": {**obj.get("metadata", {}), "resourceVersion": str(self._rv)}}
        if event_type == "DELETED":
            self._objects.pop(key, None)
        else:
            self._objects[key] = obj
        self._append(Event(self._rv, key[0], key[1], event_type, obj, old))
        return obj

    def _append(self, event: Event) -> None:
        self._log.append(event)
        self._log_rvs.append(event.rv)
        if len(self._log) > 2 * self._history:
            dropped = len(self._log) - self._history
            self._oldest_rv = self._log_rvs[dropped - 1]
            del self._log[:dropped]
            del self._log_rvs[:dropped]
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    # --- reading the log ---------------------------------------------------

    def wakeup(self) -> asyncio.Event:
        """An event set at the next write (take it before reading, then wait on it)."""
        return self._wakeup

    def notify(self) -> None:
        """Wakes every waiting watch without writing (used at shutdown)."""
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def events_after(self, rv: int) -> list[Event]:
        """Events with resourceVersion > rv, oldest first; Expired if history no longer reaches rv."""
        if rv < self._oldest_rv:
            raise Expired(rv)
        start = bisect.bisect_right(self._log_rvs, rv)
        return self._log[start:]
