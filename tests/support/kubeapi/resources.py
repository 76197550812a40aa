"""Which resources the server serves: built-ins from kmock's bundle, CRDs as posted.

A ResourceType is one (group, version, plural) with its discovery facts.
Objects are stored per (group, plural): the versions of one resource share
their objects, as in a real cluster.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SubResource:
    name: str  # "status", "scale", "log", ...
    kind: str
    verbs: tuple[str, ...]
    group: str | None = None  # of the response kind, when it differs (Scale is autoscaling/v1)
    version: str | None = None


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[SubResource, ...] = ()
    # CRDs only: the CRD's name, its additionalPrinterColumns (None for built-ins) and storage version.
    crd_name: str | None = None
    printer_columns: tuple[dict[str, Any], ...] | None = None
    storage_version: str | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return any(s.name == "status" for s in self.subresources)

    def subresource(self, name: str) -> SubResource | None:
        return next((s for s in self.subresources if s.name == name), None)

    @property
    def is_crd(self) -> bool:
        return self.crd_name is not None

    @property
    def base_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key, best first: GA > beta > alpha, higher numbers first, then other names A-Z."""
    m = _KUBE_VERSION.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, "")


def _bundled_docs() -> list[dict[str, Any]]:
    # kmock's own snapshot of a k3s cluster's discovery (read directly: its loader uses a deprecated API).
    data = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
    docs: list[dict[str, Any]] = json.loads(gzip.decompress(data))
    return docs


# Groups in kmock's snapshot that this emulation does not serve (no objects of them make sense here).
_SKIPPED_GROUPS = {"metrics.k8s.io"}


def builtin_types() -> list[ResourceType]:
    types: list[ResourceType] = []
    for doc in _bundled_docs():
        group_version = doc["groupVersion"]
        group, _, version = group_version.rpartition("/")
        if group in _SKIPPED_GROUPS:
            continue
        entries = doc.get("resources", [])
        subs: dict[str, list[SubResource]] = {}
        for entry in entries:
            if "/" in entry["name"]:
                parent, sub = entry["name"].split("/", 1)
                subs.setdefault(parent, []).append(
                    SubResource(
                        sub,
                        entry.get("kind", ""),
                        tuple(entry.get("verbs", ())),
                        entry.get("group"),
                        entry.get("version"),
                    )
                )
        for entry in entries:
            if "/" in entry["name"]:
                continue
            types.append(
                ResourceType(
                    group=group,
                    version=version,
                    plural=entry["name"],
                    kind=entry["kind"],
                    singular=entry.get("singularName") or entry["kind"].lower(),
                    namespaced=bool(entry.get("namespaced")),
                    verbs=tuple(entry.get("verbs", ())),
                    short_names=tuple(entry.get("shortNames", ())),
                    categories=tuple(entry.get("categories", ())),
                    subresources=tuple(subs.get(entry["name"], ())),
                )
            )
    return types


@dataclass
class Registry:
    """The served resources, looked up by (group, version, plural) or by name as kubectl types it."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _group_order: list[str] = field(default_factory=list)

    @classmethod
    def with_builtins(cls) -> Registry:
        registry = cls()
        registry.add(builtin_types())
        return registry

    def add(self, types: Iterable[ResourceType]) -> None:
        for rtype in types:
            self._types[(rtype.group, rtype.version, rtype.plural)] = rtype
            if rtype.group not in self._group_order:
                self._group_order.append(rtype.group)

    def remove_crd(self, crd_name: str) -> None:
        for key in [k for k, t in self._types.items() if t.crd_name == crd_name]:
            del self._types[key]
        remaining = {t.group for t in self._types.values()}
        self._group_order = [g for g in self._group_order if g in remaining]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> list[str]:
        """Served groups in registration order; "" is the core group."""
        return list(self._group_order)

    def versions(self, group: str) -> list[str]:
        """Versions of a group, preferred first."""
        found = {t.version for t in self._types.values() if t.group == group}
        return sorted(found, key=version_priority)

    def in_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.version == version]

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return next(
            (t for t in self._types.values() if (t.group, t.version, t.kind) == (group, version, kind)), None
        )

    def preferred(self, group: str, plural: str) -> ResourceType | None:
        for version in self.versions(group):
            found = self.get(group, version, plural)
            if found:
                return found
        return None
