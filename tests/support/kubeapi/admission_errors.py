"""Validation errors worded as kube-apiserver words them (k8s.io/apimachinery field.Error).

Values print as Go's fmt prints them, paths as field.Path renders them
(``spec.a[0].b``, map keys as ``spec.m[key]``), so a test can compare a
message with what a cluster answers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

UNKNOWN_FIELD = "field not declared in schema"
NOT_CHECKED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)

_LABELS = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueTypeInvalid": "Invalid value",
    "FieldValueRequired": "Required value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueForbidden": "Forbidden",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueNotFound": "Not found",
}
_WITHOUT_VALUE = {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong"}
# apiextensions-apiserver skips CEL when one of these was found: the rules'
# cost bounds and types assume a schema-valid object.
BLOCKING = {
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
}


@dataclass(frozen=True)
class FieldError:
    """One ``field.Error``: ``type`` is the cause reason the API server reports."""

    field: str
    type: str
    detail: str
    value: Any = None

    def body(self) -> str:
        """The message without the field, as in a Status cause's ``message``."""
        label = _LABELS[self.type]
        text = label if self.type in _WITHOUT_VALUE else f"{label}: {go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def message(self) -> str:
        """Kube style: ``spec.method: Unsupported value: "lorax": supported values: ...``."""
        return f"{self.field or '<nil>'}: {self.body()}"


# --- value formatting (Go's fmt, as field.Error prints values) --------------


def go_value(value: Any) -> str:
    if value is None:
        return '"null"'  # field.Error turns nil into the string "null", then quotes it
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def go_float(x: float) -> str:
    """``fmt.Sprint(float64)``: shortest digits; exponent form below 1e-4 and from 1e6 (%g)."""
    if x != x or x in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(x)]
    if x == 0:
        return "0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    point = len(text) + exp  # position of the decimal point in `text`
    neg = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        e = point - 1
        return f"{neg}{mantissa}e{'-' if e < 0 else '+'}{abs(e):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{neg}{text}{'0' * (point - len(text))}"
    return f"{neg}{text[:point]}.{text[point:]}"


# --- paths ------------------------------------------------------------------


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int | str) -> str:
    return f"{path}[{i}]"


def resolve_field_path(path: str, field_path: str) -> str:
    # fieldPath is a relative JSONPath: .a.b, .a['b'] or .a[0].
    for token in re.findall(r"\.([^.\[]+)|\['([^']*)'\]|\[(\d+)\]", field_path):
        name, quoted, index = token
        path = index(path, index) if index else child(path, name or quoted)
    return path
