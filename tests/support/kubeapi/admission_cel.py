"""CEL for ``x-kubernetes-validations``, on cel-python, as the API server runs it.

Values are typed from the schema (a ``number`` field is a double even when the
JSON holds 1), ``oldSelf`` is bound only where the old object has a
correlatable node (object fields, map values, list-map and set items), and a
rule that calls anything outside standard CEL fails loudly: cel-python does
not have the Kubernetes CEL libraries, and a rule it cannot run must not pass.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

from support.kubeapi.admission_errors import FieldError, child, index, resolve_field_path


class CelUnsupportedError(ValueError):
    """A rule uses something cel-python cannot evaluate (or that is not standard CEL)."""


class CelEvaluationError(ValueError):
    """A rule failed to evaluate (``cel_eval`` only; admission reports it as a FieldError)."""


# Standard CEL (cel-spec) functions and macros that cel-python implements. The
# Kubernetes libraries (lists, strings ext, regex find, url, ip, quantity,
# format, ...) are deliberately absent: cel-python cannot run them.
STANDARD_FUNCTIONS = frozenset(
    {
        "has",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "dyn",
        "duration",
        "timestamp",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getFullYear",
        "getMonth",
        "getHours",
        "getMilliseconds",
        "getMinutes",
        "getSeconds",
    }
)
_ENV = celpy.Environment()


@functools.cache
def cel_functions(rule: str) -> frozenset[str]:
    """The functions and macros a rule calls (global and receiver style)."""
    tree = _compile(rule)
    names = set()
    for node in tree.iter_subtrees():
        if node.data == "ident_arg":
            names.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            names.add(str(node.children[1]))
    return frozenset(names)


@functools.cache
def _compile(rule: str) -> Any:
    try:
        return _ENV.compile(rule)
    except CELParseError as exc:
        raise CelUnsupportedError(f"rule does not compile: {rule!r}: {exc}") from exc


@functools.cache
def _program(rule: str) -> celpy.Runner:
    unsupported = sorted(cel_functions(rule) - STANDARD_FUNCTIONS)
    if unsupported:
        raise CelUnsupportedError(
            f"rule {rule!r} calls {', '.join(unsupported)}: not standard CEL, cel-python cannot evaluate it"
        )
    return _ENV.program(_compile(rule))


def _to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """A wire value as the API server types it for CEL: number fields are doubles."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        fallback = extra if isinstance(extra, dict) else {}
        return celtypes.MapType(
            {celtypes.StringType(k): _to_cel(v, properties.get(k, fallback)) for k, v in value.items()}
        )
    if isinstance(value, list):
        return celtypes.ListType([_to_cel(v, schema.get("items", {})) for v in value])
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and schema.get("type") == "number":
        return celtypes.DoubleType(float(value))
    if numeric and schema.get("type") == "integer":
        return celtypes.IntType(int(value))
    return json_to_cel(value)


def _from_cel(value: Any) -> Any:
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.ListType):
        return [_from_cel(v) for v in value]
    if isinstance(value, celtypes.MapType):
        return {_from_cel(k): _from_cel(v) for k, v in value.items()}
    return value


def _evaluate(rule: str, activation: dict[str, Any]) -> Any:
    """The rule's result; a CELEvalError instance when evaluation failed."""
    try:
        return _program(rule).evaluate(activation)
    except CELEvalError as exc:
        return exc


def _eval_error_text(error: CELEvalError) -> str:
    # cel-python words it "no such member in mapping: 'x'"; cel-go "no such key: x".
    text = str(error.args[0]) if error.args else str(error)
    match = re.search(r"no such member in mapping: '([^']*)'", text)
    return f"no such key: {match.group(1)}" if match else text


def cel_eval(rule: str, self_value: Any, old_value: Any = None) -> Any:
    """Evaluates one rule on JSON values (``oldSelf`` bound when ``old_value`` is given).

    Returns the result as a plain Python value; raises ``CelEvaluationError``
    when evaluation fails and ``CelUnsupportedError`` for non-standard CEL.
    """
    activation = {"self": json_to_cel(self_value)}
    if old_value is not None:
        activation["oldSelf"] = json_to_cel(old_value)
    result = _evaluate(rule, activation)
    if isinstance(result, CELEvalError):
        raise CelEvaluationError(f"{_eval_error_text(result)} evaluating rule: {rule}")
    return _from_cel(result)


def run_rules(
    value: Any, old: Any, has_old: bool, schema: dict[str, Any], path: str, errors: list[FieldError]
) -> None:
    rules = schema.get("x-kubernetes-validations", [])
    if rules:
        # Typed once per node, shared by its rules.
        activation = {"self": _to_cel(value, schema)}
        if has_old:
            activation["oldSelf"] = _to_cel(old, schema)
        for rule in rules:
            error = _apply_rule(rule, activation, schema, path)
            if error is not None:
                errors.append(error)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        old_map = old if has_old and isinstance(old, dict) else {}
        for key, item in value.items():
            sub = properties.get(key) or (extra if isinstance(extra, dict) else None)
            if sub is None or (path == "" and key == "metadata"):
                continue
            where = child(path, key) if key in properties else index(path, key)
            run_rules(item, old_map.get(key), key in old_map, sub, where, errors)
    elif isinstance(value, list) and "items" in schema:
        olds = _correlate(value, old if has_old and isinstance(old, list) else None, schema)
        for i, item in enumerate(value):
            found, old_item = olds[i]
            run_rules(item, old_item, found, schema["items"], index(path, i), errors)


def _correlate(value: list[Any], old: list[Any] | None, schema: dict[str, Any]) -> list[tuple[bool, Any]]:
    # Only list-maps (by key) and sets (by value) have a stable identity for
    # their items; atomic lists get no oldSelf, as in the API server.
    none: list[tuple[bool, Any]] = [(False, None)] * len(value)
    list_type = schema.get("x-kubernetes-list-type")
    if old is None or list_type not in ("map", "set"):
        return none
    if list_type == "set":
        return [(item in old, item if item in old else None) for item in value]
    keys = schema.get("x-kubernetes-list-map-keys", [])

    def key_of(item: Any) -> str:
        return json.dumps([item.get(k) for k in keys] if isinstance(item, dict) else item)

    by_key = {key_of(item): item for item in old}
    return [(key_of(item) in by_key, by_key.get(key_of(item))) for item in value]


def _apply_rule(
    rule: dict[str, Any], activation: dict[str, Any], schema: dict[str, Any], path: str
) -> FieldError | None:
    expression = rule["rule"]
    if "oldSelf" in cel_identifiers(expression) and "oldSelf" not in activation:
        return None  # a transition rule: only on update, only where the old object has the node
    node_type = schema.get("type", "object")
    result = _evaluate(expression, activation)
    if isinstance(result, CELEvalError):
        detail = f"{_eval_error_text(result)} evaluating rule: {_rule_text(rule)}"
        return FieldError(path, "FieldValueInvalid", detail, node_type)
    if not isinstance(result, celtypes.BoolType):
        raise CelUnsupportedError(f"rule {expression!r} at {path or '<root>'} does not evaluate to a bool")
    if result:
        return None
    where = resolve_field_path(path, rule["fieldPath"]) if rule.get("fieldPath") else path
    reason = rule.get("reason", "FieldValueInvalid")
    return FieldError(where, reason, _rule_message(rule, activation), node_type)


@functools.cache
def cel_identifiers(rule: str) -> frozenset[str]:
    """Identifiers a rule reads (``self``, ``oldSelf``, macro variables)."""
    tree = _compile(rule)
    return frozenset(str(node.children[0]) for node in tree.iter_subtrees() if node.data == "ident")


def _rule_text(rule: dict[str, Any]) -> str:
    return str(rule.get("message") or rule["rule"]).strip()


def _rule_message(rule: dict[str, Any], activation: dict[str, Any]) -> str:
    if rule.get("messageExpression"):
        result = _evaluate(rule["messageExpression"], activation)
        if isinstance(result, str) and result.strip():
            return str(result)
    if rule.get("message"):
        return str(rule["message"])
    return f"failed rule: {_rule_text(rule)}"
