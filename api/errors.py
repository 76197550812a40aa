"""pydantic validation errors as the lines a user reads: ``field: what is wrong``."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    """('spec', 'targetModules', 0) -> 'spec.targetModules[0]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-after", "function-wrap")):
            continue
        else:
            out += f".{part}" if out else part
    return out


def describe(error: ValidationError, *, prefix: str = "") -> list[str]:
    """One line per problem; the input value is shown for short scalars."""
    lines = []
    for item in error.errors(include_url=False):
        path = field_path(tuple(item["loc"]))
        where = ".".join(p for p in (prefix, path) if p) or "(root)"
        value = item.get("input")
        shown = ""
        if isinstance(value, str | int | float | bool) and item["type"] not in ("missing", "extra_forbidden"):
            text = repr(value)
            shown = f" (got {text if len(text) <= 80 else text[:77] + '...'})"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"{where}: {message}{shown}")
    return lines
