"""Dataset formats: validate one record and normalise it.

Pure functions on parsed values (JSON, or rows of Parquet/Arrow). Each raises
ValueError with a message naming the field and what is allowed, so the caller
can report ``file:line: ...``.

alpaca             {instruction, input?, output}
chat               {messages: [{role, content}, ...]} with at least one assistant turn
prompt-completion  {prompt, completion}: both text, or both messages (trl's conversational variant;
                   the completion is assistant turns)
preference         {prompt, chosen, rejected}: text, or messages. With messages the prompt may be left
                   out when chosen and rejected repeat it (trl's implicit prompt); a text prompt with
                   message answers is one user turn.

Text (not messages) in prompt-completion and preference records is used as is, without the chat
template: such data carries its own prompt format (e.g. "\\n\\nHuman: ...\\n\\nAssistant:").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ALPACA = "alpaca"
CHAT = "chat"
PROMPT_COMPLETION = "prompt-completion"
PREFERENCE = "preference"
FORMATS = (ALPACA, CHAT, PROMPT_COMPLETION, PREFERENCE)
# What each spec.trainer learns from.
TRAINER_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": (ALPACA, CHAT, PROMPT_COMPLETION),
    "dpo": (PREFERENCE,),
}
ROLES = ("system", "user", "assistant")
Message = dict[str, str]


def type_name(value: Any) -> str:
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
        raise ValueError(f"{label} must be a string, got {type_name(value)}")
    if required and not value.strip():
        raise ValueError(f"{label} is empty")
    return value


def _object(value: Any, expected: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object with {expected}, got {type_name(value)}")
    return value


def messages_of(value: Any, key: str, *, roles: tuple[str, ...] = ROLES, first: int = 0) -> list[Message]:
    """[{role, content}] from field ``key``; ``first``: where the list starts in the whole conversation."""
    if not isinstance(value, list):
        raise ValueError(f"field '{key}' must be an array, got {type_name(value)}")
    if not value:
        raise ValueError(f"field '{key}' is empty")
    out = []
    for index, message in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object with role and content, got {type_name(message)}")
        role = _text_field(message, "role", required=True, label=f"{where}.role")
        if role not in roles:
            allowed = f"must be {roles[0]}" if len(roles) == 1 else f"is not one of {', '.join(roles)}"
            raise ValueError(f"{where}.role {role!r} {allowed}")
        if role == "system" and first + index != 0:
            raise ValueError(f"{where}: a system message may only come first")
        content = _text_field(message, "content", required=True, label=f"{where}.content")
        out.append({"role": role, "content": content})
    return out


def normalize_alpaca(value: Any) -> dict[str, str]:
    """{instruction, input, output} from one record."""
    record = _object(value, "instruction/input/output")
    return {
        "instruction": _text_field(record, "instruction", required=True),
        "input": _text_field(record, "input", required=False),
        "output": _text_field(record, "output", required=True),
    }


def normalize_chat(value: Any) -> dict[str, list[Message]]:
    """{messages: [{role, content}, ...]} from one record."""
    record = _object(value, "'messages'")
    if "messages" not in record:
        raise ValueError("missing field 'messages'")
    messages = messages_of(record["messages"], "messages")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("the conversation has no assistant message to learn from")
    return {"messages": messages}


def _is_messages(value: Any) -> bool:
    return isinstance(value, list)


def normalize_prompt_completion(value: Any) -> dict[str, Any]:
    """{prompt, completion}: both text, or a conversation and the assistant turns that answer it."""
    record = _object(value, "prompt/completion")
    for key in ("prompt", "completion"):
        if record.get(key) is None:
            raise ValueError(f"missing field '{key}'")
    prompt, completion = record["prompt"], record["completion"]
    if _is_messages(prompt) or _is_messages(completion):
        if not (_is_messages(prompt) and _is_messages(completion)):
            raise ValueError(
                "fields 'prompt' and 'completion' must both be strings or both be arrays of messages, got "
                f"{type_name(prompt)} and {type_name(completion)}"
            )
        prompt_messages = messages_of(prompt, "prompt")
        return {
            "prompt": prompt_messages,
            "completion": messages_of(
                completion, "completion", roles=("assistant",), first=len(prompt_messages)
            ),
        }
    return {
        "prompt": _text_field(record, "prompt", required=True),
        "completion": _text_field(record, "completion", required=True),
    }


def _split_implicit_prompt(chosen: list[Any], rejected: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """(prompt, chosen, rejected): the leading messages both conversations share are the prompt."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise ValueError(
            "missing field 'prompt', and 'chosen' and 'rejected' share no leading messages to take it from"
        )
    return chosen[:shared], chosen[shared:], rejected[shared:]


def normalize_preference(value: Any) -> dict[str, Any]:
    """{prompt, chosen, rejected}: all text, or a conversation and two alternative assistant answers."""
    record = _object(value, "prompt/chosen/rejected")
    for key in ("chosen", "rejected"):
        if record.get(key) is None:
            raise ValueError(f"missing field '{key}'")
    chosen, rejected, prompt = record["chosen"], record["rejected"], record.get("prompt")
    if _is_messages(chosen) != _is_messages(rejected):
        raise ValueError(
            "fields 'chosen' and 'rejected' must both be strings or both be arrays of messages, got "
            f"{type_name(chosen)} and {type_name(rejected)}"
        )
    if _is_messages(chosen):
        out = _conversational_preference(prompt, chosen, rejected)
    else:
        if prompt is None:
            raise ValueError("missing field 'prompt' (text answers need the prompt in its own field)")
        if _is_messages(prompt):
            raise ValueError("field 'prompt' is an array of messages, so 'chosen' and 'rejected' must be too")
        out = {
            "prompt": _text_field(record, "prompt", required=True),
            "chosen": _text_field(record, "chosen", required=True),
            "rejected": _text_field(record, "rejected", required=True),
        }
    if out["chosen"] == out["rejected"]:
        raise ValueError("'chosen' and 'rejected' are identical: the pair teaches nothing")
    return out


def _conversational_preference(prompt: Any, chosen: list[Any], rejected: list[Any]) -> dict[str, Any]:
    if prompt is None:
        prompt, chosen, rejected = _split_implicit_prompt(chosen, rejected)
        for key, answer in (("chosen", chosen), ("rejected", rejected)):
            if not answer:
                raise ValueError(f"'{key}' holds nothing after the messages it shares with the other answer")
    elif isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("field 'prompt' is empty")
        prompt = [{"role": "user", "content": prompt}]
    prompt_messages = messages_of(prompt, "prompt")
    first = len(prompt_messages)
    return {
        "prompt": prompt_messages,
        "chosen": messages_of(chosen, "chosen", roles=("assistant",), first=first),
        "rejected": messages_of(rejected, "rejected", roles=("assistant",), first=first),
    }


def is_conversational(record: dict[str, Any]) -> bool:
    """Whether a normalised record is messages (rendered with the chat template) rather than text."""
    return "messages" in record or _is_messages(record.get("prompt"))


NORMALIZERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    ALPACA: normalize_alpaca,
    CHAT: normalize_chat,
    PROMPT_COMPLETION: normalize_prompt_completion,
    PREFERENCE: normalize_preference,
}
