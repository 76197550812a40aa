"""Label and field selectors, parsed and matched as kube-apiserver does.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`,
`!k`, `k>1`, `k<1`, joined by commas (all must hold).

Field selectors: `path=v`, `path==v`, `path!=v`, joined by commas, with `\\,`
`\\=` `\\\\` escapes. The real server allows a fixed set of paths per kind
(`metadata.name`, `metadata.namespace`, pods' `status.phase`, events'
`involvedObject.*`, ...); this one accepts any dotted path into the object,
a missing field reading as "" (so `spec.nodeName=` matches unscheduled pods).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from support.kubeapi.errors import ApiError, bad_request

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}$")
_VALUE = re.compile(rf"^({_NAME})?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                try:
                    number, bound = int(value or ""), int(self.values[0])
                except ValueError:
                    return False
                return number > bound if self.op == "gt" else number < bound
        raise AssertionError(self.op)


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return all(r.matches(labels or {}) for r in self.requirements)


def _label_error(text: str, why: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {why} (in label selector {text!r})")


def _split_top_level(text: str) -> list[str]:
    """Splits on commas that are not inside `(...)`."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _check_key(key: str, text: str) -> str:
    if not _KEY.match(key):
        raise _label_error(
            text,
            f"key {key!r} is invalid: a qualified name must consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character",
        )
    return key


def _check_value(value: str, text: str) -> str:
    if not _VALUE.match(value):
        raise _label_error(
            text,
            f"value {value!r} is invalid: a valid label must be an empty string or consist "
            "of alphanumeric characters, '-', '_' or '.'",
        )
    return value


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^!=<>\s]+)\s*(==|=|!=|>|<)\s*(\S*)\s*$")


def _parse_requirement(part: str, text: str) -> Requirement:
    if m := _SET_RE.match(part):
        values = tuple(_check_value(v.strip(), text) for v in m.group(3).split(","))
        if values == ("",):
            raise _label_error(text, f"for 'in', 'notin' operators, values set can't be empty: {part!r}")
        return Requirement(_check_key(m.group(1), text), m.group(2), values)
    if m := _CMP_RE.match(part):
        key, op, value = m.groups()
        if op in (">", "<"):
            if not value.isdigit():
                raise _label_error(
                    text, f"for 'gt', 'lt' operators, exactly one integer value is required: {part!r}"
                )
            return Requirement(_check_key(key, text), "gt" if op == ">" else "lt", (value,))
        return Requirement(
            _check_key(key, text), "=" if op in ("=", "==") else "!=", (_check_value(value, text),)
        )
    stripped = part.strip()
    if stripped.startswith("!"):
        return Requirement(_check_key(stripped[1:].strip(), text), "!")
    if stripped and " " not in stripped:
        return Requirement(_check_key(stripped, text), "exists")
    raise _label_error(text, f"found {part.strip()!r}, expected: key, !key, key=value, key in (...)")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parses `?labelSelector=`; raises a 400 ApiError naming the bad part."""
    if not text or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_parse_requirement(p, text) for p in _split_top_level(text)))


def selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector (`matchLabels` + `matchExpressions`) as a LabelSelector."""
    if not selector:
        return LabelSelector()
    reqs = [Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return LabelSelector(tuple(reqs))


# --- field selectors --------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    equal: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.path) == self.value) == self.equal


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def exact_name(self) -> str | None:
        """The name a `metadata.name=X` requirement pins, if any (a fast path for watches)."""
        for r in self.requirements:
            if r.path == "metadata.name" and r.equal:
                return r.value
        return None


def field_value(obj: Mapping[str, Any], path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


_FIELD_RE = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(==|!=|=)(.*)$", re.S)


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parses `?fieldSelector=`; raises a 400 ApiError naming the bad part."""
    if not text or not text.strip():
        return FieldSelector()
    reqs = []
    for part in _split_unescaped(text, ","):
        m = _FIELD_RE.match(part.strip())
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = m.groups()
        reqs.append(FieldRequirement(path, op != "!=", _unescape(value)))
    return FieldSelector(tuple(reqs))
