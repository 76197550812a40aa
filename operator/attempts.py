"""Which attempt of a Job runs now, and whether the one before it was preempted: pure functions.

A preempted pod is not counted in the Job's ``status.failed`` (podFailurePolicy
Ignore), so attempts are counted from the pods. A pod counts as preempted when
it carries the DisruptionTarget condition (eviction, scheduler preemption, node
drain) or when its main container says so in its termination message (reason
Preempted: the trainer stopped on SIGTERM and saved a checkpoint, whose step
it reports as ``checkpoint.step``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PREEMPTED_REASON = "Preempted"
"""The termination reason of a trainer stopped by SIGTERM (tuneforge.trainer.preemption)."""


@dataclass(frozen=True)
class Preemption:
    """How an ended pod was preempted; ``step`` is the checkpoint it left, when it says so."""

    step: int | None


def _phase(pod: dict[str, Any]) -> str:
    return str(pod.get("status", {}).get("phase") or "Pending")


def ended_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods that failed (preempted ones included), oldest first."""
    ended = [p for p in pods if _phase(p) == "Failed"]
    return sorted(ended, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def current_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pod that speaks for the run now: the newest one still pending or running, else the newest.

    Creation times have one-second resolution, so a replacement created in the same second as
    the pod it replaces must not lose to it.
    """
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if not live:
        return None
    active = [p for p in live if _phase(p) in ("Pending", "Running")]
    pool = active or live
    return max(pool, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def attempt_number(job: dict[str, Any], pods: list[dict[str, Any]], current: dict[str, Any] | None) -> int:
    """1 for the first pod; preempted pods count, although the Job's ``status.failed`` leaves them out."""
    ended = [p for p in ended_pods(pods) if p is not current]
    counted = int(job.get("status", {}).get("failed") or 0)
    return max(counted, len(ended)) + 1


def preemption(pod: dict[str, Any], container: str) -> Preemption | None:
    """How ``pod`` was preempted, or None when it ended for another reason."""
    status = pod.get("status", {})
    conditions = status.get("conditions") or []
    disrupted = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True" for c in conditions)
    said = _termination_data(pod, container)
    if not disrupted and said.get("reason") != PREEMPTED_REASON:
        return None
    checkpoint = said.get("checkpoint")
    step = checkpoint.get("step") if isinstance(checkpoint, dict) else None
    return Preemption(step if isinstance(step, int) else None)


def _termination_data(pod: dict[str, Any], container: str) -> dict[str, Any]:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if status.get("name") == container and terminated:
            try:
                data = json.loads(terminated.get("message") or "")
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def attempt_note(
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    current: dict[str, Any] | None,
    container: str,
    *,
    done: bool,
) -> str:
    """`` (attempt 2, resumed from step 8 after a preemption)`` or ``""`` on the first attempt.

    ``done`` picks the tense: the new pod's trainer runs (resumed) or is still starting (resuming).
    """
    number = attempt_number(job, pods, current)
    if number == 1:
        return ""
    previous = [p for p in ended_pods(pods) if p is not current]
    how = preemption(previous[-1], container) if previous else None
    if how is None:
        return f" (attempt {number})"
    if how.step is None:
        return f" (attempt {number}, after a preemption)"
    verb = "resumed" if done else "resuming"
    return f" (attempt {number}, {verb} from step {how.step} after a preemption)"


def retry_message(pod: dict[str, Any], number: int, container: str) -> str:
    """What to say while the Job replaces the pod that just ended (attempt ``number``)."""
    how = preemption(pod, container)
    if how is None:
        return f"attempt {number} failed; the Job starts attempt {number + 1}"
    saved = f" after saving a checkpoint at step {how.step}" if how.step is not None else ""
    return f"attempt {number} was preempted{saved}; the Job starts attempt {number + 1}"
