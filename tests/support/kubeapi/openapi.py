"""OpenAPI v3 for custom resources, as `kubectl explain` reads it.

`/openapi/v3` lists one document per CRD group-version; each document holds
the CRD's schema under `components.schemas["<reversed group>.<version>.<Kind>"]`
with `x-kubernetes-group-version-kind`, and the ObjectMeta/ListMeta schemas
it refers to. Every group-version (built-ins too) has the PATCH operations
kubectl inspects to learn that the server does field validation
(`fieldValidation=Strict`); built-in kinds have no schemas, so `kubectl
explain` works for custom resources only.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from support.kubeapi.resources import Registry, ResourceType

META = "io.k8s.apimachinery.pkg.apis.meta.v1"

_OBJECT_META = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which includes all "
    "objects users must create.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {
            "type": "string",
            "description": "GenerateName is an optional prefix, used by the server, "
            "to generate a unique name ONLY IF the Name field has not been provided.",
        },
        "namespace": {
            "type": "string",
            "description": "Namespace defines the space within which each name must be unique.",
        },
        "uid": {
            "type": "string",
            "description": "UID is the unique in time and space value for this object.",
        },
        "resourceVersion": {
            "type": "string",
            "description": "An opaque value that represents the internal version of this object.",
        },
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "A sequence number representing a specific generation of the desired state.",
        },
        "creationTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "CreationTimestamp is a "
            "timestamp representing the server time when this object was created.",
        },
        "deletionTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "DeletionTimestamp is RFC "
            "3339 date and time at which this resource will be deleted.",
        },
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Map of string "
            "keys and values that can be used to organize and categorize (scope and select) objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Annotations is an unstructured key value map stored with a resource.",
        },
        "finalizers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object"},
            "description": "List of objects depended by this object.",
        },
    },
}
_LIST_META = {
    "description": "ListMeta describes metadata that synthetic resources must have.",
    "type": "object",
    "properties": {
        "resourceVersion": {
            "type": "string",
            "description": "String that identifies the server's internal version of this object.",
        },
        "continue": {
            "type": "string",
            "description": "continue may be set if the user set a limit on the number of items returned.",
        },
    },
}
_API_VERSION = {
    "type": "string",
    "description": "APIVersion defines the versioned schema of this representation of an object.",
}
_KIND = {
    "type": "string",
    "description": "Kind is a string value representing the REST resource this object represents.",
}


def schema_name(group: str, version: str, kind: str) -> str:
    return ".".join([*reversed(group.split(".")), version, kind])


def _kind_schema(rtype: ResourceType, crd_schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(crd_schema)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {**_API_VERSION, **props.get("apiVersion", {})}
    props["kind"] = {**_KIND, **props.get("kind", {})}
    props["metadata"] = {
        "allOf": [{"$ref": f"#/components/schemas/{META}.ObjectMeta"}],
        "description": "Standard object's metadata.",
    }
    schema["type"] = "object"
    schema["x-kubernetes-group-version-kind"] = [
        {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
    ]
    return schema


def _list_schema(rtype: ResourceType, item_name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"{rtype.kind}List is a list of {rtype.kind}",
        "required": ["items"],
        "properties": {
            "apiVersion": _API_VERSION,
            "kind": _KIND,
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item_name}"}},
            "metadata": {"allOf": [{"$ref": f"#/components/schemas/{META}.ListMeta"}]},
        },
        "x-kubernetes-group-version-kind": [
            {"group": rtype.group, "version": rtype.version, "kind": rtype.list_kind}
        ],
    }


def _patch_path(rtype: ResourceType) -> tuple[str, dict[str, Any]]:
    """The PATCH operation kubectl looks for to learn that the server validates fields (fieldValidation)."""
    scope = "/namespaces/{namespace}" if rtype.namespaced else ""
    path = f"{rtype.base_path}{scope}/{rtype.plural}/{{name}}"
    operation = {
        "description": f"partially update the specified {rtype.kind}",
        "operationId": f"patch{rtype.kind}",
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True}},
        ],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {
            "group": rtype.group,
            "version": rtype.version,
            "kind": rtype.kind,
        },
    }
    return path, {"patch": operation}


def document(
    registry: Registry, crds_by_name: dict[str, dict[str, Any]], group: str, version: str
) -> dict[str, Any]:
    schemas: dict[str, Any] = {f"{META}.ObjectMeta": _OBJECT_META, f"{META}.ListMeta": _LIST_META}
    paths: dict[str, Any] = {}
    for rtype in registry.in_version(group, version):
        if "patch" in rtype.verbs:
            path, item = _patch_path(rtype)
            paths[path] = item
        crd = crds_by_name.get(rtype.crd_name or "")
        if crd is None:
            continue
        served: dict[str, Any] = next((v for v in crd["spec"]["versions"] if v["name"] == version), {})
        crd_schema = (served.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        name = schema_name(group, version, rtype.kind)
        schemas[name] = _kind_schema(rtype, crd_schema)
        schemas[schema_name(group, version, rtype.list_kind)] = _list_schema(rtype, name)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()


def index(registry: Registry, crds_by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    paths = {}
    for group, version in sorted({(t.group, t.version) for t in registry.all()}):
        doc = document(registry, crds_by_name, group, version)
        prefix = f"apis/{group}/{version}" if group else f"api/{version}"
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={_hash(doc)}"}
    return {"paths": paths}
