"""Dataset formats: detect which one records are in, validate and normalise them.

Pure functions on parsed JSON values. Every check returns a message naming
the field and what is allowed, so the caller can report ``file:line: ...``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuneforge.trainer.errors import DatasetInvalid, NotSupportedYet
from tuneforge.trainer.records import RawRecord

ALPACA = "alpaca"
CHAT = "chat"
SUPPORTED = (ALPACA, CHAT)
ROLES = ("system", "user", "assistant")

# Formats we can recognise, in the order they are tried, with the keys that give them away.
_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (CHAT, ("messages",)),
    (ALPACA, ("instruction",)),
    ("preference", ("prompt", "chosen", "rejected")),
    ("prompt-completion", ("prompt", "completion")),
    ("sharegpt", ("conversations",)),
    ("text", ("text",)),
)


def detect_record(value: Any) -> str | None:
    """The format one record looks like, "ambiguous" when it looks like several, None when none."""
    if not isinstance(value, dict):
        return None
    matches = [fmt for fmt, keys in _SIGNATURES if all(k in value for k in keys)]
    if len(matches) > 1 and set(matches) & set(SUPPORTED):
        return "ambiguous"
    return matches[0] if matches else None


def detect_format(records: list[RawRecord]) -> str:
    """The one supported format all recognisable records share.

    Refuses a mix of formats, a record that fits two, and data that fits none.
    """
    first_seen: dict[str, str] = {}
    for record in records:
        fmt = detect_record(record.value)
        if fmt is not None:
            first_seen.setdefault(fmt, record.where)
    if "ambiguous" in first_seen:
        raise DatasetInvalid(
            f"{first_seen['ambiguous']}: the record has both 'messages' and 'instruction'; "
            "cannot tell chat from alpaca: set spec.dataset.format"
        )
    if len(first_seen) > 1:
        seen = ", ".join(f"{fmt} at {where}" for fmt, where in first_seen.items())
        raise DatasetInvalid(
            f"the dataset mixes formats ({seen}); use one format per dataset, or set spec.dataset.format "
            "to the intended one so other records are reported as invalid"
        )
    if not first_seen:
        keys = sorted({k for r in records[:100] if isinstance(r.value, dict) for k in r.value})
        shown = ", ".join(keys[:20]) or "none"
        raise DatasetInvalid(
            "cannot detect the dataset format: expected records with 'messages' (chat) or "
            f"'instruction'/'input'/'output' (alpaca); keys seen: {shown}"
        )
    (fmt, where), *_ = first_seen.items()
    if fmt not in SUPPORTED:
        raise NotSupportedYet(
            f"the dataset looks like {fmt} records (first at {where}); supported formats: alpaca, chat"
        )
    return fmt


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _text_field(record: dict[str, Any], key: str, *, required: bool, label: str | None = None) -> str:
    label = label or f"field '{key}'"
    if key not in record or (record[key] is None and not required):
        if required:
            raise ValueError(f"missing {label}")
        return ""
    value = record[key]
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, got {_type_name(value)}")
    if required and not value.strip():
        raise ValueError(f"{label} is empty")
    return value


def normalize_alpaca(value: Any) -> dict[str, str]:
    """{instruction, input, output} from one record; ValueError says what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object with instruction/input/output, got {_type_name(value)}")
    return {
        "instruction": _text_field(value, "instruction", required=True),
        "input": _text_field(value, "input", required=False),
        "output": _text_field(value, "output", required=True),
    }


def normalize_chat(value: Any) -> dict[str, list[dict[str, str]]]:
    """{messages: [{role, content}, ...]} from one record; ValueError says what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object with 'messages', got {_type_name(value)}")
    if "messages" not in value:
        raise ValueError("missing field 'messages'")
    messages = value["messages"]
    if not isinstance(messages, list):
        raise ValueError(f"field 'messages' must be an array, got {_type_name(messages)}")
    if not messages:
        raise ValueError("field 'messages' is empty")
    out = []
    for index, message in enumerate(messages):
        label = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{label} must be an object with role and content, got {_type_name(message)}")
        role = _text_field(message, "role", required=True, label=f"{label}.role")
        if role not in ROLES:
            raise ValueError(f"{label}.role {role!r} is not one of {', '.join(ROLES)}")
        if role == "system" and index != 0:
            raise ValueError(f"{label}: a system message may only come first")
        content = _text_field(message, "content", required=True, label=f"{label}.content")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError("the conversation has no assistant message to learn from")
    return {"messages": out}


NORMALIZERS: dict[str, Callable[[Any], dict[str, Any]]] = {ALPACA: normalize_alpaca, CHAT: normalize_chat}
