"""What the API server does to an object's metadata and status on each write.

Pure functions: `prepare_create` fills the server-owned metadata,
`prepare_update` applies the status-subresource and generation rules
(k8s.io/apiserver rest.BeforeCreate/BeforeUpdate and the CRD strategies).
"""

from __future__ import annotations

import copy
import datetime
import json
import random
import re
import uuid
from typing import Any

from support.kubeapi.errors import Cause, bad_request
from support.kubeapi.resources import ResourceType

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names are DNS labels, not subdomains.
_LABEL_NAMED = {("", "namespaces"), ("", "services")}
# Where generateName draws its suffix from (k8s.io/apiserver names.SimpleNameGenerator).
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    return prefix[:58] + "".join(random.choice(_ALPHANUMS) for _ in range(5))


def name_causes(rtype: ResourceType, name: str, field: str = "metadata.name") -> list[Cause]:
    if rtype.key in _LABEL_NAMED:
        if len(name) > 63 or not _LABEL.match(name):
            return [
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist '
                    "of lower case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                    field,
                )
            ]
        return []
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return [
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist '
                "of lower case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                field,
            )
        ]
    return []


def check_type(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """apiVersion/kind in the body must name the resource of the URL (missing ones are filled in)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version and api_version != rtype.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({rtype.api_version})"
        )
    if kind and kind != rtype.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")


def prepare_create(rtype: ResourceType, body: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """The object as stored at creation: server-owned metadata set, status reset where it is a subresource."""
    obj = copy.deepcopy(body)
    check_type(rtype, obj)
    obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    if meta.get("resourceVersion"):
        raise bad_request("resourceVersion should not be set on objects to be created")
    body_ns = meta.get("namespace")
    if rtype.namespaced:
        if body_ns and namespace and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace or body_ns
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"])
    for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
        meta.pop(server_owned, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    meta["generation"] = 1
    if rtype.has_status:
        obj.pop("status", None)
    return obj


def _content(obj: dict[str, Any], *, without_status: bool) -> dict[str, Any]:
    dropped = {"metadata", "status"} if without_status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in dropped}


# Metadata a status write cannot change (metav1.ResetObjectMetaForStatus).
_STATUS_FROZEN_META = (
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "deletionTimestamp",
    "generation",
)
# Metadata no write can change.
_IMMUTABLE_META = (
    "uid",
    "creationTimestamp",
    "namespace",
    "name",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def prepare_update(
    rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """The object to store when `new` replaces `old` through the main resource or /status."""
    obj = copy.deepcopy(new)
    check_type(rtype, obj)
    obj["apiVersion"], obj["kind"] = old["apiVersion"], old["kind"]
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    old_meta = old.get("metadata", {})
    for name in _IMMUTABLE_META:
        if name in old_meta:
            meta[name] = old_meta[name]
        else:
            meta.pop(name, None)
    meta.pop("managedFields", None)
    if subresource == "status":
        # Only .status moves; everything else (and most metadata) stays as it was.
        status = obj.get("status")
        obj = {**copy.deepcopy(old), "metadata": meta}
        if status is None:
            obj.pop("status", None)
        else:
            obj["status"] = status
        for name in _STATUS_FROZEN_META:
            if name in old_meta:
                meta[name] = copy.deepcopy(old_meta[name])
            else:
                meta.pop(name, None)
        return obj
    if rtype.has_status:
        if "status" in old:
            obj["status"] = copy.deepcopy(old["status"])
        else:
            obj.pop("status", None)
    generation = int(old_meta.get("generation") or 0)
    changed = _content(obj, without_status=rtype.has_status) != _content(old, without_status=rtype.has_status)
    meta["generation"] = generation + 1 if changed else generation
    return obj


def same_object(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for resourceVersion: such an update is a no-op (no new version, no event)."""

    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
        return {**obj, "metadata": meta}

    return strip(a) == strip(b)


def new_finalizers(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    before = set(old.get("metadata", {}).get("finalizers") or [])
    return [f for f in new.get("metadata", {}).get("finalizers") or [] if f not in before]


def meta_causes(rtype: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    """Checks of metadata every kind shares: name, labels and annotations are strings."""
    meta = obj.get("metadata", {})
    name = meta.get("name")
    if not name:
        return [
            Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name")
        ]
    causes = name_causes(rtype, str(name))
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict):
            causes.append(
                Cause("FieldValueTypeInvalid", "Invalid value: must be a map of strings", f"metadata.{field}")
            )
            continue
        for key, value in values.items():
            if not isinstance(value, str):
                causes.append(
                    Cause(
                        "FieldValueTypeInvalid",
                        f"Invalid value: {json.dumps(value)}: must be a string",
                        f"metadata.{field}.{key}",
                    )
                )
    return causes
