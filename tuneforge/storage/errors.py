"""The one error type of the storage layer, and scrubbing of secrets from messages."""

from __future__ import annotations

import os
import re
from typing import Final, Literal

from tuneforge import exitcodes

Reason = Literal[
    "InvalidUri", "NotFound", "AccessDenied", "Unreachable", "Corrupt", "NotSupported", "TransferFailed"
]

EXIT_CODES: Final[dict[str, int]] = {
    "InvalidUri": exitcodes.INVALID_INPUT,
    "NotSupported": exitcodes.INVALID_INPUT,
    "NotFound": exitcodes.NOT_FOUND,
    "AccessDenied": exitcodes.ACCESS_DENIED,
    # A retry may help with these: the store may come back, a re-read may be whole.
    "Unreachable": exitcodes.FAILED,
    "Corrupt": exitcodes.FAILED,
    "TransferFailed": exitcodes.FAILED,
}

# Values that must never reach a log, a status or a termination message.
_SECRET_ENV: Final = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "WANDB_API_KEY",
)
_SECRET_ENV_PREFIXES: Final = ("HF_TOKEN_DESTINATION_",)
"""The export Job's per-destination Hub write tokens (operator/builders/export.py)."""
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_SIGNED_QUERY = re.compile(
    r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)|X-Goog-(?:Signature|Credential))=[^&\s\"']*"
)


def redact(text: str) -> str:
    """Removes credentials from ``text``: known secret env values, URL userinfo, signed-URL parts."""
    names = [*_SECRET_ENV, *(n for n in os.environ if n.startswith(_SECRET_ENV_PREFIXES))]
    for name in names:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    text = _URL_USERINFO.sub("***@", text)
    return _SIGNED_QUERY.sub(r"\1=***", text)


class StorageError(Exception):
    """A storage operation failed; ``reason`` says how, ``str()`` says what to do.

    ``reason`` is one CamelCase word (it becomes a termination-message and
    condition reason); ``exit_code`` is what ``tuneforge fetch`` exits with.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        self.reason: Reason = reason
        self.message = redact(message)
        self.exit_code = EXIT_CODES[reason]
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message
