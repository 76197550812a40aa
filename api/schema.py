"""pydantic model -> Kubernetes structural OpenAPI v3 schema.

pydantic writes JSON Schema (draft 2020-12) with ``$ref``/``$defs``,
``anyOf [X, null]`` for Optional fields and numeric ``exclusiveMinimum``; the
API server wants a *structural* schema: everything inlined, a ``type`` on
every node, OpenAPI v3.0 boolean ``exclusiveMinimum``, no ``nullable``
tricks. An Optional field is simply not required. Anything this module does
not know how to translate is an error, never silently dropped.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, NoDefault
from pydantic_core import core_schema

# Keys a node of a structural schema may carry (after translation).
_ALLOWED_KEYS = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "format",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
    }
)
# pydantic's bookkeeping, meaningless to the API server.
_DROPPED_KEYS = frozenset({"title", "$defs"})


class SchemaError(ValueError):
    """The model uses a construct a structural schema cannot express."""


class _StructuralJsonSchema(GenerateJsonSchema):
    """pydantic's generator with Kubernetes' view of Optional and defaults."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        # Optional means "may be absent": the field is just not required.
        return self.generate_inner(schema["schema"])

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        if "default_factory" in schema:
            if schema.get("default_factory_takes_data"):
                raise SchemaError("default factories that take data cannot be expressed in a CRD")
            value = schema["default_factory"]()  # type: ignore[call-arg]
            if isinstance(value, BaseModel):
                return _empty_object_default(value)
            return value
        default = schema.get("default", NoDefault)
        return NoDefault if default is None else default


def _empty_object_default(value: BaseModel) -> dict[str, Any]:
    # `default: {}` lets the API server fill the nested defaults itself, which
    # matches pydantic only if the factory builds exactly the all-defaults object.
    cls = type(value)
    if value != cls.model_validate({}):
        raise SchemaError(
            f"default_factory of {cls.__name__} must build {cls.__name__}() with no arguments: "
            "the CRD can only express it as `default: {}`"
        )
    return {}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model``'s wire form."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_StructuralJsonSchema)
    defs = raw.get("$defs", {})
    return _translate(raw, defs, model.__name__)


def _translate(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = dict(node)
    ref = node.pop("$ref", None)
    out = _translate_keys(node, defs, where)
    if ref is not None:
        out = _merge(_translate(defs[ref.rsplit("/", 1)[-1]], defs, where), out)
    if "enum" in out and _enum_type(out["enum"]) == "string":
        out.setdefault("type", "string")
        # The CEL cost estimator reads maxLength, never the enum.
        out.setdefault("maxLength", max(len(v) for v in out["enum"]))
    if "type" not in out:
        raise SchemaError(f"{where}: every node of a structural schema needs a type")
    return dict(sorted(out.items()))


def _translate_keys(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    for combinator in ("anyOf", "oneOf", "allOf", "not"):
        if combinator in node:
            raise SchemaError(f"{where}: {combinator} cannot be expressed in a structural schema")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _translate(sub, defs, f"{where}.{name}") for name, sub in sorted(value.items())}
        elif key == "items":
            out[key] = _translate(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _translate(value, defs, f"{where}[*]")
            # `false` is what the API server does anyway (pruning), and a
            # structural schema may not combine it with properties.
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out[key.replace("exclusiveM", "m")] = value
            out[key] = True
        elif key == "required":
            out[key] = sorted(value)
        elif key == "description":
            out[key] = _clean_description(value)
        elif key in _ALLOWED_KEYS:
            out[key] = copy.deepcopy(value)
        else:
            raise SchemaError(f"{where}: schema keyword {key!r} has no structural-schema translation")
    return out


def _enum_type(values: list[Any]) -> str | None:
    return "string" if all(isinstance(v, str) for v in values) else None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    # A field's own keys (description, default, rules) win over its type's.
    merged = {**base, **over}
    rules = base.get("x-kubernetes-validations", []) + over.get("x-kubernetes-validations", [])
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _clean_description(text: str) -> str:
    # Docstrings wrap at the source's line length; kubectl explain wraps itself.
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)
