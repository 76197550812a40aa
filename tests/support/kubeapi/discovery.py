"""Discovery documents: /api, /apis, /apis/GROUP, /apis/GROUP/VERSION, and aggregated discovery.

Subresources are listed as `plural/sub` entries with their own kind and
verbs and, as on a real server, without the parent's short names or
categories.
"""

from __future__ import annotations

from typing import Any

from support.kubeapi.resources import Registry, ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def _resource_entries(rtype: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        entry["categories"] = list(rtype.categories)
    entries = [entry]
    for sub in rtype.subresources:
        sub_entry: dict[str, Any] = {
            "name": f"{rtype.plural}/{sub.name}",
            "singularName": "",
            "namespaced": rtype.namespaced,
            "kind": sub.kind,
            "verbs": list(sub.verbs),
        }
        if sub.group is not None:
            sub_entry["group"], sub_entry["version"] = sub.group, sub.version
        entries.append(sub_entry)
    return entries


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_version(group, version)
    if not types:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for t in types for e in _resource_entries(t)],
    }


def _group(registry: Registry, group: str) -> dict[str, Any]:
    versions = registry.versions(group)
    return {
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
    }


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def group_list(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(registry, g) for g in registry.groups() if g],
    }


def group(registry: Registry, name: str) -> dict[str, Any] | None:
    if not name or name not in registry.groups():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(registry, name)}


def _aggregated_resource(rtype: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": rtype.plural,
        "responseKind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
        "scope": "Namespaced" if rtype.namespaced else "Cluster",
        "singularResource": rtype.singular,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        out["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        out["categories"] = list(rtype.categories)
    if rtype.subresources:
        out["subresources"] = [
            {
                "subresource": sub.name,
                "responseKind": {
                    "group": sub.group if sub.group is not None else rtype.group,
                    "version": sub.version if sub.version is not None else rtype.version,
                    "kind": sub.kind,
                },
                "verbs": list(sub.verbs),
            }
            for sub in rtype.subresources
        ]
    return out


def aggregated(registry: Registry, *, core: bool) -> dict[str, Any]:
    """apidiscovery.k8s.io/v2 APIGroupDiscoveryList: /api (core=True) or /apis."""
    groups = [""] if core else [g for g in registry.groups() if g]
    items = []
    for name in groups:
        versions = [
            {
                "version": v,
                "resources": [_aggregated_resource(t) for t in registry.in_version(name, v)],
                "freshness": "Current",
            }
            for v in registry.versions(name)
        ]
        items.append({"metadata": {"name": name, "creationTimestamp": None}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
