"""spec.dataset.format auto: tell which format the records are in, or refuse saying why.

A record is recognised by the keys that give its format away. Detection
refuses a record that fits two formats, a dataset that mixes formats, data
that fits none (naming the keys it saw and the formats it knows), and a
format the trainer does not learn from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tuneforge.trainer.errors import DatasetInvalid
from tuneforge.trainer.formats import ALPACA, CHAT, PREFERENCE, PROMPT_COMPLETION, TRAINER_FORMATS
from tuneforge.trainer.records import RawRecord

# Format -> (keys that give it away, the keys users know it by).
SIGNATURES: dict[str, tuple[tuple[str, ...], str]] = {
    CHAT: (("messages",), "messages"),
    ALPACA: (("instruction",), "instruction, input, output"),
    PROMPT_COMPLETION: (("prompt", "completion"), "prompt, completion"),
    PREFERENCE: (("chosen", "rejected"), "prompt, chosen, rejected"),
    # Recognised so the refusal can say what to do; not trained on.
    "sharegpt": (("conversations",), "conversations"),
    "text": (("text",), "text"),
}
HINTS = {
    "sharegpt": "rename 'conversations' to 'messages', with role/content turns (chat format)",
    "text": "plain text is not a fine-tuning format here; use prompt-completion or chat records",
}
KEYS_SHOWN = 20
RECORDS_SCANNED_FOR_KEYS = 100


def known_formats() -> str:
    """'alpaca (instruction, input, output), chat (messages), ...' for messages."""
    return ", ".join(f"{fmt} ({keys})" for fmt, (_, keys) in SIGNATURES.items() if fmt not in HINTS)


def matching_formats(value: Any) -> list[str]:
    """Every format whose tell-tale keys the record has."""
    if not isinstance(value, dict):
        return []
    return [fmt for fmt, (keys, _) in SIGNATURES.items() if all(k in value for k in keys)]


def _cannot_tell(formats: list[str]) -> str:
    if len(formats) == 2:
        return f"cannot tell {formats[0]} from {formats[1]}"
    return f"cannot tell {', '.join(formats[:-1])} and {formats[-1]} apart"


def _keys_seen(records: Iterable[RawRecord]) -> str:
    keys: set[str] = set()
    for index, record in enumerate(records):
        if index >= RECORDS_SCANNED_FOR_KEYS:
            break
        if isinstance(record.value, dict):
            keys.update(str(k) for k in record.value)
    return ", ".join(sorted(keys)[:KEYS_SHOWN]) or "none (the records are not objects)"


def detect_format(records: list[RawRecord], *, trainer: str = "sft") -> str:
    """The one format all recognisable records share, if ``trainer`` learns from it."""
    first_seen: dict[str, str] = {}
    for record in records:
        matches = matching_formats(record.value)
        if len(matches) > 1:
            fits = " and ".join(f"{fmt} ({', '.join(SIGNATURES[fmt][0])})" for fmt in matches)
            raise DatasetInvalid(
                f"{record.where}: the record has the keys of {fits}: {_cannot_tell(matches)}; "
                "set spec.dataset.format"
            )
        if matches:
            first_seen.setdefault(matches[0], record.where)
    if len(first_seen) > 1:
        seen = ", ".join(f"{fmt} at {where}" for fmt, where in first_seen.items())
        raise DatasetInvalid(
            f"the dataset mixes formats ({seen}); use one format per dataset, or set spec.dataset.format "
            "to the intended one so other records are reported as invalid"
        )
    if not first_seen:
        raise DatasetInvalid(
            f"cannot detect the dataset format: keys seen: {_keys_seen(records)}; "
            f"known formats: {known_formats()}"
        )
    ((fmt, where),) = first_seen.items()
    return _check_trainer(fmt, where, trainer)


def _check_trainer(fmt: str, where: str, trainer: str) -> str:
    if fmt in HINTS:
        raise DatasetInvalid(
            f"the dataset looks like {fmt} records (first at {where}), which Tuneforge does not read: "
            f"{HINTS[fmt]}; known formats: {known_formats()}"
        )
    allowed = TRAINER_FORMATS[trainer]
    if fmt not in allowed:
        learners = [name for name, formats in TRAINER_FORMATS.items() if fmt in formats]
        raise DatasetInvalid(
            f"the dataset holds {fmt} records (first at {where}), which spec.trainer {' or '.join(learners)} "
            f"learns from; spec.trainer {trainer} needs {' or '.join(allowed)} records"
        )
    return fmt
