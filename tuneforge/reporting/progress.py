"""Pure helpers of the reporter: percent, ETA, merge-patch coalescing, log lines."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def finite(value: float | int | None) -> float | None:
    """``value`` as a float, or None when missing, NaN or infinite (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def percent(step: int, total_steps: int | None) -> int:
    """Whole percent of ``total_steps`` done, within 0..100 (0 when the total is unknown)."""
    if not total_steps or total_steps <= 0:
        return 0
    return max(0, min(100, int(100 * step / total_steps)))


def eta_seconds(step: int, total_steps: int | None, elapsed: float) -> int | None:
    """Seconds left at the mean pace so far; None before the first step or without a total."""
    if not total_steps or step <= 0 or elapsed < 0:
        return None
    remaining = max(0, total_steps - step)
    return round(elapsed / step * remaining)


def seconds_until_due(now: float, last_sent: float | None, interval: float) -> float:
    """How long a rate-limited sender must still wait (0: send now)."""
    if last_sent is None:
        return 0.0
    return max(0.0, last_sent + interval - now)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: ``patch`` applied to ``target`` (neither is modified).

    Coalescing two patches this way gives one patch with the effect of both.
    """
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: float) -> str:
    """12s, 3m05s, 2h01m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(progress: dict[str, Any]) -> str:
    """One structured log line from a wire Progress block: ``step=10/60 loss=2.31 eta=12s``."""
    total = progress.get("totalSteps")
    parts = [f"step={progress.get('step', 0)}/{total if total is not None else '?'}"]
    if total:
        parts.append(f"percent={progress.get('percent', 0)}")
    if progress.get("epoch") is not None:
        total_epochs = progress.get("totalEpochs")
        epochs = f"/{total_epochs:g}" if total_epochs is not None else ""
        parts.append(f"epoch={progress['epoch']:.2f}{epochs}")
    if progress.get("loss") is not None:
        parts.append(f"loss={progress['loss']:.4g}")
    if progress.get("tokensPerSecond") is not None:
        parts.append(f"tokens/s={progress['tokensPerSecond']:.0f}")
    if progress.get("etaSeconds") is not None:
        parts.append(f"eta={format_duration(progress['etaSeconds'])}")
    if progress.get("message"):
        parts.append(f"message={progress['message']!r}")
    return " ".join(parts)
