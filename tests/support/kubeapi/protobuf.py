"""Decoding of the protobuf bodies kubectl's generator commands send.

`kubectl create configmap|secret|namespace|serviceaccount|role|rolebinding|
clusterrole|clusterrolebinding` post built-in objects as
`application/vnd.kubernetes.protobuf` (a `k8s\\0` + runtime.Unknown
envelope) and never fall back to JSON. This decodes those kinds with their
field numbers from k8s.io/api's generated.proto into the JSON form; any
other kind gets 415, as from a server without protobuf support for it.
"""

from __future__ import annotations

import base64
from typing import Any

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# A field: (json name, type); types are "string", "bytes", "varint", "bool", a nested schema (dict),
# ("map", value type) or ("repeated", type).
Schema = dict[int, tuple[str, Any]]

OWNER_REFERENCE: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "varint"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", OWNER_REFERENCE)),
    14: ("finalizers", ("repeated", "string")),
}
OBJECT_REFERENCE: Schema = {
    1: ("kind", "string"),
    2: ("namespace", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    7: ("fieldPath", "string"),
}
POLICY_RULE: Schema = {
    1: ("verbs", ("repeated", "string")),
    2: ("apiGroups", ("repeated", "string")),
    3: ("resources", ("repeated", "string")),
    4: ("resourceNames", ("repeated", "string")),
    5: ("nonResourceURLs", ("repeated", "string")),
}
SUBJECT: Schema = {
    1: ("kind", "string"),
    2: ("apiGroup", "string"),
    3: ("name", "string"),
    4: ("namespace", "string"),
}
ROLE_REF: Schema = {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}
BINDING: Schema = {
    1: ("metadata", OBJECT_META),
    2: ("subjects", ("repeated", SUBJECT)),
    3: ("roleRef", ROLE_REF),
}
ROLE: Schema = {1: ("metadata", OBJECT_META), 2: ("rules", ("repeated", POLICY_RULE))}

KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "ConfigMap"): {
        1: ("metadata", OBJECT_META),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: ("metadata", OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    ("v1", "Namespace"): {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("finalizers", ("repeated", "string"))}),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", OBJECT_META),
        2: ("secrets", ("repeated", OBJECT_REFERENCE)),
        3: ("automountServiceAccountToken", "bool"),
        4: ("imagePullSecrets", ("repeated", {1: ("name", "string")})),
    },
    ("rbac.authorization.k8s.io/v1", "Role"): ROLE,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ROLE,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): BINDING,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): BINDING,
}


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, raw value) in order."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        value: Any
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _scalar(kind: Any, raw: Any) -> Any:
    match kind:
        case "string":
            return raw.decode("utf-8")
        case "bytes":
            return base64.b64encode(raw).decode()
        case "varint":
            return raw
        case "bool":
            return bool(raw)
        case dict():
            return decode_message(raw, kind)
    raise ProtobufError(f"unknown field type {kind!r}")


def decode_message(data: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, _, raw in _fields(data):
        if number not in schema:
            continue  # fields the server would set or this emulation ignores
        name, kind = schema[number]
        if isinstance(kind, tuple) and kind[0] == "map":
            entry = {n: v for n, _, v in _fields(raw)}
            out.setdefault(name, {})[entry.get(1, b"").decode()] = _scalar(kind[1], entry.get(2, b""))
        elif isinstance(kind, tuple) and kind[0] == "repeated":
            out.setdefault(name, []).append(_scalar(kind[1], raw))
        else:
            value = _scalar(kind, raw)
            if value not in ("", 0, {}, None) or kind == "bool":
                out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a `k8s\\0`-framed protobuf object; ProtobufError for unknown kinds or bad data."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body (missing the k8s\\0 prefix)")
    envelope = {n: v for n, _, v in _fields(body[len(MAGIC) :])}
    type_meta = {n: v.decode() for n, _, v in _fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    schema = KINDS.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"protobuf decoding of {api_version} {kind} is not supported; send JSON")
    return {"apiVersion": api_version, "kind": kind, **decode_message(envelope.get(2, b""), schema)}
