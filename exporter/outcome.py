"""How an export ends: reason, message and artifacts, for the status and the termination message.

Pure. The termination message holds at most 4096 bytes; the artifacts list
(one entry per destination, as ``status.artifacts`` takes them) is cut to
fit by dropping, from every entry, the fields the status can do without
first (digest, llama.cpp version, sha256, ...), never whole entries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tuneforge import exitcodes

ARTIFACTS_BUDGET: Final = 3400
"""Bytes of the termination message the artifacts may take (the reason and message get the rest)."""
DROP_ORDER: Final = ("digest", "llamaCppVersion", "sha256", "quantization", "format", "bytes", "uri")


@dataclass
class Outcome:
    reason: str
    message: str
    exit_code: int = exitcodes.OK
    artifacts: list[dict[str, Any]] = field(default_factory=list)


def fit_artifacts(entries: Sequence[dict[str, Any]], budget: int = ARTIFACTS_BUDGET) -> list[dict[str, Any]]:
    """``entries`` with fields dropped (in DROP_ORDER, from all entries alike) until their JSON fits."""
    fitted = [dict(entry) for entry in entries]
    for key in DROP_ORDER:
        if _size(fitted) <= budget:
            break
        for entry in fitted:
            entry.pop(key, None)
    return fitted


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def human_bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000  # type: ignore[assignment]
    return f"{size} B"


def success_message(name: str, artifacts: Sequence[dict[str, Any]]) -> str:
    """``model-q8_0.gguf (12.3 MB) published to 2 destinations (1 reused): s3://..., hf://...``."""
    reused = sum(1 for a in artifacts if a.get("reused"))
    size = next((a["bytes"] for a in artifacts if a.get("bytes") is not None), None)
    what = f"{name} ({human_bytes(size)})" if size is not None else name
    count = len(artifacts)
    where = ", ".join(str(a.get("destination")) for a in artifacts)
    verb = "already at" if reused == count else "published to"
    detail = f" ({reused} reused)" if 0 < reused < count else ""
    return f"{what} {verb} {count} destination{'s' if count != 1 else ''}{detail}: {where}"
