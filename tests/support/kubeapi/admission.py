"""Admission of a custom resource, as kube-apiserver does it, as a pure function.

On create and update the real server: drops (or, with strict field
validation, refuses) fields the schema does not declare and null values of
non-nullable fields; applies the schema's defaults; validates the OpenAPI
schema; then, unless a "blocking" error was found, evaluates every
``x-kubernetes-validations`` rule (``oldSelf`` rules only on update and only
where the old object has the node). The error wording follows
k8s.io/apimachinery's ``field.Error`` and apiextensions-apiserver's
translation of go-openapi errors, so tests can compare messages with what a
cluster prints. CEL runs on cel-python; a rule that needs a function outside
standard CEL fails loudly (``CelUnsupportedError``) instead of passing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

from support.kubeapi.admission_cel import (
    STANDARD_FUNCTIONS,
    CelEvaluationError,
    CelUnsupportedError,
    cel_eval,
    cel_functions,
    cel_identifiers,
    run_rules,
)
from support.kubeapi.admission_errors import (
    BLOCKING,
    NOT_CHECKED,
    UNKNOWN_FIELD,
    FieldError,
    child,
    go_float,
    go_value,
    index,
)

__all__ = [
    "NOT_CHECKED",
    "STANDARD_FUNCTIONS",
    "UNKNOWN_FIELD",
    "CelEvaluationError",
    "CelUnsupportedError",
    "FieldError",
    "cel_eval",
    "cel_functions",
    "cel_identifiers",
    "go_float",
    "go_value",
    "strict_decoding_message",
    "validate",
]


def validate(
    crd: dict[str, Any],
    version: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    *,
    strict: bool,
    subresource: str | None = None,
) -> tuple[dict[str, Any], list[FieldError]]:
    """Returns the object as the server would store it, and the errors.

    Defaults applied, unknown fields pruned (``strict=False``) or reported as
    ``FieldValueForbidden`` / ``field not declared in schema`` (``strict=True``).
    With a status subresource, status is dropped on create and kept from
    ``old`` on a main-resource update; ``subresource="status"`` takes
    everything but ``.status`` from ``old`` and schema-checks only
    ``.status`` (CEL still sees the whole object, with ``oldSelf``).
    """
    entry = _version(crd, version)
    schema = entry["schema"]["openAPIV3Schema"]
    has_status = "status" in (entry.get("subresources") or {})
    new = copy.deepcopy(obj)
    prior = copy.deepcopy(old) if old is not None else None
    if subresource == "status":
        if prior is None:
            raise ValueError("a status update needs the old object")
        new = _with_status(prior, new)
    elif subresource is not None:
        raise ValueError(f"subresource {subresource!r} is not validated here (only 'status')")
    elif has_status:
        new = _with_status(new, prior or {})

    errors: list[FieldError] = []
    new = _prune(new, schema, "", strict, errors)
    _default(new, schema)
    if prior is not None:
        prior = _prune(prior, schema, "", False, [])
        _default(prior, schema)

    if subresource == "status":
        if "status" in new:
            _check(new["status"], schema["properties"]["status"], "status", errors)
    else:
        _check(new, schema, "", errors)
    if any(e.type in BLOCKING for e in errors):
        errors.append(FieldError("", "FieldValueInvalid", NOT_CHECKED))
    else:
        run_rules(new, prior, prior is not None, schema, "", errors)
    return new, errors


def strict_decoding_message(errors: list[FieldError]) -> str | None:
    """``strict decoding error: unknown field "spec.x", ...`` when strict mode refused fields."""
    unknown = [e.field for e in errors if e.type == "FieldValueForbidden" and e.detail == UNKNOWN_FIELD]
    if not unknown:
        return None
    return "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)


def _version(crd: dict[str, Any], version: str) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    for entry in versions:
        if entry["name"] == version:
            return dict(entry)
    served = ", ".join(v["name"] for v in versions)
    raise ValueError(f"{crd['metadata']['name']} has no version {version!r} (it has: {served})")


def _with_status(base: dict[str, Any], status_from: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    out.pop("status", None)
    if "status" in status_from:
        out["status"] = copy.deepcopy(status_from["status"])
    return out


# --- pruning and defaulting -------------------------------------------------


def _prune(value: Any, schema: dict[str, Any], path: str, strict: bool, errors: list[FieldError]) -> Any:
    if isinstance(value, list):
        items = schema.get("items")
        return [_prune(v, items, index(path, i), strict, errors) if items else v for i, v in enumerate(value)]
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if path == "metadata":
        return value  # ObjectMeta: the server's own type, never pruned by the CRD schema
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    out = {}
    for key in sorted(value):
        sub = properties.get(key) or (extra if isinstance(extra, dict) else None)
        where = child(path, key) if key in properties or not isinstance(extra, dict) else index(path, key)
        if sub is None:
            if strict:
                errors.append(FieldError(where, "FieldValueForbidden", UNKNOWN_FIELD))
            continue
        if value[key] is None and not sub.get("nullable"):
            continue  # null means "absent" (and then "defaulted") for non-nullable fields
        out[key] = _prune(value[key], sub, where, strict, errors)
    return {k: out[k] for k in value if k in out}


def _default(value: Any, schema: dict[str, Any]) -> None:
    if isinstance(value, list) and "items" in schema:
        for item in value:
            _default(item, schema["items"])
    if not isinstance(value, dict):
        return
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        sub = properties.get(key) or (extra if isinstance(extra, dict) else None)
        if sub is not None:
            _default(item, sub)


# --- OpenAPI schema validation ----------------------------------------------


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, expected: str | None) -> bool:
    actual = _json_type(value)
    if expected is None or actual == expected:
        return True
    if expected == "number":
        return actual == "integer"
    # go-openapi takes 4.0 for an integer.
    return expected == "integer" and actual == "number" and float(value).is_integer()


def _check(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    name = path or "body"
    expected = schema.get("type")
    if not _type_ok(value, expected):
        actual = _json_type(value)
        detail = f'{name} in body must be of type {expected}: "{actual}"'
        errors.append(FieldError(path, "FieldValueTypeInvalid", detail, actual))
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        errors.append(FieldError(path, "FieldValueNotSupported", f"supported values: {allowed}", value))
    if isinstance(value, str):
        _check_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, path, errors)
    elif isinstance(value, list):
        _check_array(value, schema, path, errors)
    elif isinstance(value, dict):
        _check_object(value, schema, path, errors)


def _check_string(value: str, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    name = path or "body"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        limit = schema["maxLength"]
        detail = f"may not be more than {limit} byte{'' if limit == 1 else 's'}"
        errors.append(FieldError(path, "FieldValueTooLong", detail, value))
    if "minLength" in schema and len(value) < schema["minLength"]:
        detail = f"{name} in body should be at least {schema['minLength']} chars long"
        errors.append(FieldError(path, "FieldValueInvalid", detail, value))
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        detail = f"{name} in body should match '{schema['pattern']}'"
        errors.append(FieldError(path, "FieldValueInvalid", detail, value))


def _check_number(value: float, schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    name = path or "body"
    checks: list[tuple[str, Callable[[float, float], bool], str]] = [
        ("minimum", lambda v, b: v > b, "greater than"),
        ("maximum", lambda v, b: v < b, "less than"),
    ]
    for key, strict_ok, words in checks:
        if key not in schema:
            continue
        bound = schema[key]
        exclusive = bool(schema.get("exclusiveM" + key[1:]))
        ok = strict_ok(value, bound) or (not exclusive and value == bound)
        if not ok:
            relation = words if exclusive else f"{words} or equal to"
            # The schema's bounds are float64 in go-openapi: 10000000 prints as 1e+07.
            detail = f"{name} in body should be {relation} {go_float(float(bound))}"
            errors.append(FieldError(path, "FieldValueInvalid", detail, value))


def _check_array(value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    name = path or "body"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        limit = schema["maxItems"]
        detail = f"must have at most {limit} item{'' if limit == 1 else 's'}"
        errors.append(FieldError(path, "FieldValueTooMany", detail, len(value)))
    if "minItems" in schema and len(value) < schema["minItems"]:
        detail = f"{name} in body should have at least {schema['minItems']} items"
        errors.append(FieldError(path, "FieldValueInvalid", detail, len(value)))
    items = schema.get("items")
    if items is not None:
        for i, item in enumerate(value):
            _check(item, items, index(path, i), errors)
    _check_list_type(value, schema, path, errors)


def _check_list_type(value: list[Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type not in ("map", "set"):
        return
    seen: set[str] = set()
    for i, item in enumerate(value):
        if list_type == "map":
            if not isinstance(item, dict):
                continue
            key_value: Any = {k: item.get(k) for k in schema.get("x-kubernetes-list-map-keys", [])}
        else:
            key_value = item
        token = json.dumps(key_value, sort_keys=True)
        if token in seen:
            errors.append(FieldError(index(path, i), "FieldValueDuplicate", "", key_value))
        seen.add(token)


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    name = path or "body"
    for key in schema.get("required", []):
        if key not in value:
            errors.append(FieldError(child(path, key), "FieldValueRequired", ""))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        limit = schema["maxProperties"]
        detail = f"must have at most {limit} item{'' if limit == 1 else 's'}"
        errors.append(FieldError(path, "FieldValueTooMany", detail, len(value)))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        detail = f"{name} in body should have at least {schema['minProperties']} properties"
        errors.append(FieldError(path, "FieldValueInvalid", detail, len(value)))
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for key, item in sorted(value.items()):
        if key in properties:
            _check(item, properties[key], child(path, key), errors)
        elif isinstance(extra, dict):
            _check(item, extra, index(path, key), errors)
