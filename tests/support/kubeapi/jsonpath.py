"""The subset of Kubernetes JSONPath that printer columns use.

`.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, `.*`, `..name` and filters
`[?(@.type=="Succeeded")]` (also `!=`, `<`, `<=`, `>`, `>=`, and bare
`[?(@.field)]` for presence), optionally wrapped in `{...}` as kubectl writes
them. `find(path, obj)` returns every value the path reaches, in order.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class JsonPathError(ValueError):
    pass


@dataclass(frozen=True)
class _Step:
    kind: str  # "field", "index", "wildcard", "recurse", "filter"
    arg: Any = None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_FILTER_RE = re.compile(r"^\?\(\s*@((?:\.[\w\-/]+)+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")
_NAME_RE = re.compile(r"[\w\-/]+")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _bracket(content: str, path: str) -> _Step:
    content = content.strip()
    if content == "*":
        return _Step("wildcard")
    if content.startswith("?"):
        m = _FILTER_RE.match(content)
        if not m:
            raise JsonPathError(f"unsupported filter {content!r} in {path!r}")
        fields = m.group(1).lstrip(".").split(".")
        return _Step("filter", (fields, m.group(2), _literal(m.group(3)) if m.group(3) else None))
    if len(content) >= 2 and content[0] == content[-1] and content[0] in "'\"":
        return _Step("field", content[1:-1])
    if re.fullmatch(r"-?\d+", content):
        return _Step("index", int(content))
    raise JsonPathError(f"unsupported bracket [{content}] in {path!r}")


@functools.cache
def parse(path: str) -> tuple[_Step, ...]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[_Step] = []
    i = 0
    while i < len(text):
        if text.startswith("..", i):
            steps.append(_Step("recurse"))
            i += 2
            continue
        char = text[i]
        if char == ".":
            i += 1
            if i < len(text) and text[i] == "*":
                steps.append(_Step("wildcard"))
                i += 1
                continue
            m = _NAME_RE.match(text, i)
            if not m:
                if i >= len(text):
                    break  # a lone "." means the whole object
                raise JsonPathError(f"expected a field name at {i} in {path!r}")
            steps.append(_Step("field", m.group()))
            i = m.end()
        elif char == "[":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "[":
                    depth += 1
                elif text[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(text):
                raise JsonPathError(f"unclosed '[' in {path!r}")
            steps.append(_bracket(text[i + 1 : j], path))
            i = j + 1
        else:
            m = _NAME_RE.match(text, i)
            if not m:
                raise JsonPathError(f"unexpected {char!r} at {i} in {path!r}")
            steps.append(_Step("field", m.group()))
            i = m.end()
    return tuple(steps)


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


def _descendants(value: Any) -> list[Any]:
    out = [value]
    for child in _children(value):
        out.extend(_descendants(child))
    return out


def _dig(value: Any, fields: list[str]) -> tuple[bool, Any]:
    for name in fields:
        if not isinstance(value, dict) or name not in value:
            return False, None
        value = value[name]
    return True, value


def _apply(step: _Step, values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        match step.kind:
            case "field":
                if isinstance(value, dict) and step.arg in value:
                    out.append(value[step.arg])
            case "index":
                if isinstance(value, list) and -len(value) <= step.arg < len(value):
                    out.append(value[step.arg])
            case "wildcard":
                out.extend(_children(value))
            case "recurse":
                out.extend(_descendants(value))
            case "filter":
                fields, op, literal = step.arg
                for item in value if isinstance(value, list) else []:
                    found, actual = _dig(item, fields)
                    if op is None:
                        if found:
                            out.append(item)
                    elif found:
                        try:
                            if _COMPARE[op](actual, literal):
                                out.append(item)
                        except TypeError:
                            pass
    return out


def find(path: str, obj: Any) -> list[Any]:
    """Every value `path` reaches in `obj` (empty when nothing matches)."""
    values = [obj]
    for step in parse(path):
        values = _apply(step, values)
    return values
