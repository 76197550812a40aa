"""The termination message every Tuneforge process writes when it ends.

Kubernetes keeps a container's termination message (at most 4096 bytes)
in the Pod status after the container is gone; the operator copies
``reason`` and ``message`` into the FineTuneJob's ``Succeeded`` condition,
and ``metrics`` / ``artifacts`` into its status, so a result survives a
failed status patch. The path comes from ``TUNEFORGE_TERMINATION_MESSAGE_PATH``
(the container's ``terminationMessagePath``); unset, nothing is written.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Final

from tuneforge import exitcodes

ENV: Final = "TUNEFORGE_TERMINATION_MESSAGE_PATH"
MAX_BYTES: Final = 4096


class ReportedFailure(Exception):
    """A failure a container ends with: ``reason`` and ``message`` for its termination message,
    ``exit_code`` for the Job's podFailurePolicy. Subclasses set the class defaults."""

    reason = "Failed"
    exit_code = exitcodes.FAILED

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


def termination_message(reason: str, message: str, **extra: Any) -> str:
    """The JSON document, cut to fit MAX_BYTES: the message is shortened first, then extras dropped."""
    doc: dict[str, Any] = {"reason": reason, "message": message, **extra}
    text = _dump(doc)
    if len(text.encode()) <= MAX_BYTES:
        return text
    # Drop the largest extras until the rest fits with at least a stub of the message.
    for key in sorted(extra, key=lambda k: len(_dump(extra[k])), reverse=True):
        if len(_dump({**doc, "message": ""}).encode()) <= MAX_BYTES - 64:
            break
        doc.pop(key)
    room = MAX_BYTES - len(_dump({**doc, "message": ""}).encode())
    doc["message"] = _shorten(message, room)
    return _dump(doc)


def write_termination_message(reason: str, message: str, **extra: Any) -> None:
    """Writes the termination message to $TUNEFORGE_TERMINATION_MESSAGE_PATH, when that is set.

    ``extra`` holds JSON-serialisable fields such as ``metrics={...}`` or
    ``artifacts={...}``. Failing to write is reported on stderr, never raised:
    it must not mask the error being reported.
    """
    path = os.environ.get(ENV, "").strip()
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(termination_message(reason, message, **extra))
    except OSError as exc:
        print(f"tuneforge: cannot write the termination message to {path}: {exc}", file=sys.stderr)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _shorten(message: str, room: int) -> str:
    """The longest prefix of ``message`` (plus "…") whose JSON form fits in ``room`` bytes."""
    if room <= 2:
        return ""
    if len(_dump(message).encode()) <= room:
        return message
    low, high = 0, len(message)
    while low < high:
        mid = (low + high + 1) // 2
        if len(_dump(message[:mid] + "…").encode()) <= room:
            low = mid
        else:
            high = mid - 1
    return message[:low] + "…"
