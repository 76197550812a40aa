"""CustomResourceDefinitions: what a CRD serves, and the status the real controllers give it.

`crd_types` turns a CRD into one ResourceType per served version;
`crd_causes` is the part of CRD validation that protects this server from
nonsense (names, scope, exactly one storage version); `established_status`
is what kube-apiserver's naming and establishing controllers write.
"""

from __future__ import annotations

from typing import Any

from support.kubeapi.errors import Cause
from support.kubeapi.objects import now
from support.kubeapi.resources import ResourceType, SubResource

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"


def crd_causes(crd: dict[str, Any]) -> list[Cause]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[Cause] = []
    group, plural = spec.get("group"), names.get("plural")
    if not group:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.group"))
    if not plural:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.names.plural"))
    if not names.get("kind"):
        causes.append(Cause("FieldValueRequired", "Required value", "spec.names.kind"))
    name = crd.get("metadata", {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"',
                "spec.scope",
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            Cause(
                "FieldValueRequired",
                "Required value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    for i, version in enumerate(versions):
        if not (version.get("schema") or {}).get("openAPIV3Schema"):
            causes.append(
                Cause(
                    "FieldValueRequired",
                    "Required value: schemas are required",
                    f"spec.versions[{i}].schema.openAPIV3Schema",
                )
            )
    return causes


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd["spec"]
    names = spec["names"]
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    types = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subs = []
        declared = version.get("subresources") or {}
        if "status" in declared:
            subs.append(SubResource("status", names["kind"], ("get", "patch", "update")))
        if "scale" in declared:
            subs.append(SubResource("scale", "Scale", ("get", "patch", "update"), "autoscaling", "v1"))
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec["scope"] == "Namespaced",
                verbs=("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(subs),
                crd_name=crd["metadata"]["name"],
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                storage_version=storage,
            )
        )
    return types


def crd_version(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    return next((v for v in crd.get("spec", {}).get("versions") or [] if v.get("name") == version), None)


def established_status(crd: dict[str, Any]) -> dict[str, Any]:
    names = dict(crd["spec"]["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    old = {c["type"]: c for c in (crd.get("status") or {}).get("conditions") or []}
    stamp = now()

    def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
        since = (
            old.get(kind, {}).get("lastTransitionTime") if old.get(kind, {}).get("status") == "True" else None
        )
        return {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": since or stamp,
        }

    stored = list((crd.get("status") or {}).get("storedVersions") or [])
    storage = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
    if storage not in stored:
        stored.append(storage)
    return {
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    }
