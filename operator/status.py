"""Job + Pods -> the FineTuneJob's status: a pure function.

The ``Succeeded`` condition is the truth (Tekton's pattern): Unknown while
the run is under way, its reason the stage; True or False at the end, the
reason saying why. Everything here reads plain dicts as the API serves them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tuneforge.api import conditions as C
from tuneforge.operator.attempts import attempt_note, current_pod, ended_pods, retry_message
from tuneforge.operator.builders.distributed import COMPLETION_INDEX_ANNOTATION
from tuneforge.operator.builders.job import FETCH_DATASET, FETCH_EVAL_DATASET, FETCH_MODEL, TRAINER

FETCH_REASONS = {
    FETCH_MODEL: C.FETCH_MODEL_FAILED,
    FETCH_DATASET: C.FETCH_DATASET_FAILED,
    FETCH_EVAL_DATASET: C.FETCH_DATASET_FAILED,
}
FETCH_STAGE = {
    FETCH_MODEL: "fetching the base model",
    FETCH_DATASET: "fetching the dataset",
    FETCH_EVAL_DATASET: "fetching the eval dataset",
}
# Waiting reasons that will not go away by themselves.
STUCK_WAITING = {"CreateContainerConfigError", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"}


@dataclass(frozen=True)
class Workload:
    """The container that does the work, and how its running stage reads."""

    container: str
    reason: str
    doing: str


TRAINING = Workload(TRAINER, C.TRAINING, "the trainer is running")


@dataclass(frozen=True)
class Stage:
    """Where the run stands: the Succeeded condition's status, reason and message."""

    status: str
    reason: str
    message: str

    @property
    def terminal(self) -> bool:
        return self.status != "Unknown"


@dataclass(frozen=True)
class Termination:
    """What a container left in its termination message."""

    exit_code: int | None
    reason: str | None
    message: str
    data: dict[str, Any]


def parse_termination(state: dict[str, Any]) -> Termination:
    """A container's ``state.terminated`` -> our JSON summary, when it wrote one."""
    raw = state.get("message") or ""
    data: dict[str, Any] = {}
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            data = parsed
    except ValueError:
        pass
    return Termination(
        exit_code=state.get("exitCode"),
        reason=data.get("reason") or state.get("reason"),
        message=str(data.get("message") or raw).strip(),
        data=data,
    )


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _statuses(pod: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return list(pod.get("status", {}).get(key) or [])


def failed_container(pods: list[dict[str, Any]]) -> tuple[str, Termination] | None:
    """The most recent container that ended badly, across all pods."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True):
        for status in _statuses(pod, "initContainerStatuses") + _statuses(pod, "containerStatuses"):
            terminated = (status.get("state") or {}).get("terminated")
            if terminated and terminated.get("exitCode", 0) != 0:
                return status["name"], parse_termination(terminated)
    return None


def _completion_index(pod: dict[str, Any]) -> int:
    """An Indexed Job pod's index (0 for other pods): index 0 runs rank 0, which reports the results."""
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION, "0")
    return int(value) if str(value).isdigit() else 0


def trainer_result(pods: list[dict[str, Any]], container: str = TRAINER) -> Termination | None:
    """The main container's termination summary from the pod that succeeded (index 0 first)."""
    for pod in sorted(pods, key=_completion_index):
        for status in _statuses(pod, "containerStatuses"):
            terminated = (status.get("state") or {}).get("terminated")
            if status.get("name") == container and terminated and terminated.get("exitCode") == 0:
                return parse_termination(terminated)
    return None


def _failure_stage(job: dict[str, Any], pods: list[dict[str, Any]]) -> Stage:
    failed = _condition(job, "Failed") or {}
    job_reason = failed.get("reason") or ""
    if job_reason == "DeadlineExceeded":
        return Stage("False", C.DEADLINE_EXCEEDED, "the run exceeded spec.runPolicy.activeDeadlineSeconds")
    found = failed_container(pods)
    if found is None:
        return Stage("False", C.FAILED, failed.get("message") or "the Job failed")
    container, term = found
    where = f"container {container} exited with code {term.exit_code}"
    if term.reason == "OOMKilled":
        return Stage(
            "False",
            C.OUT_OF_MEMORY,
            f"{where}: out of memory. Lower spec.hyperparameters.batchSize or maxSeqLength, "
            "turn on gradientCheckpointing, or raise spec.resources.memory",
        )
    if container in FETCH_REASONS:
        reason = FETCH_REASONS[container]
    elif term.reason and term.reason not in ("Error", "Completed"):
        reason = term.reason
    elif job_reason == "BackoffLimitExceeded":
        reason = C.BACKOFF_LIMIT_EXCEEDED
    else:
        reason = C.FAILED
    message = f"{where}: {term.message}" if term.message else where
    if job_reason == "BackoffLimitExceeded":
        message += " (retries exhausted: spec.runPolicy.backoffLimit)"
    return Stage("False", reason, message)


def _waiting_problem(pod: dict[str, Any], secret_fields: dict[str, str]) -> Stage | None:
    for status in _statuses(pod, "initContainerStatuses") + _statuses(pod, "containerStatuses"):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            message = waiting.get("message") or waiting["reason"]
            for secret, field in secret_fields.items():
                if f'"{secret}"' in message:
                    message = f"{field}: {message}; create the Secret (the pod waits for it)"
            return Stage("Unknown", waiting["reason"], f"container {status['name']}: {message}")
    return None


def _progress_rank(pod: dict[str, Any]) -> int:
    """0 not started, 1 initializing, 2 main containers started."""
    if any("running" in (s.get("state") or {}) for s in _statuses(pod, "containerStatuses")):
        return 2
    started = pod.get("status", {}).get("phase") == "Running" or _statuses(pod, "initContainerStatuses")
    return 1 if started else 0


def slowest_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Of a multi-node run's live pods, the least advanced: the run trains only once they all do."""
    live = [
        p
        for p in pods
        if COMPLETION_INDEX_ANNOTATION in (p["metadata"].get("annotations") or {})
        and not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("phase") in (None, "Pending", "Running")
    ]
    if len(live) < 2:
        return None
    return min(live, key=lambda p: (_progress_rank(p), _completion_index(p)))


def _running_stage(
    job: dict[str, Any], pods: list[dict[str, Any]], secret_fields: dict[str, str], work: Workload
) -> Stage:
    pod = slowest_pod(pods) or current_pod(pods)
    if pod is None:
        return Stage("Unknown", C.QUEUED, "waiting for the Job's pod to be created")
    if pod.get("status", {}).get("phase") == "Failed":  # the Job has yet to replace it
        number = max(int(job.get("status", {}).get("failed") or 0), len(ended_pods(pods)))
        return Stage("Unknown", C.RETRYING, retry_message(pod, number, work.container))
    attempt = attempt_note(job, pods, pod, work.container, done=False)
    problem = _waiting_problem(pod, secret_fields)
    if problem:
        return problem
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            why = cond.get("message") or cond.get("reason") or "no node fits"
            return Stage("Unknown", C.QUEUED, f"waiting for a node: {why}")
    for status in _statuses(pod, "initContainerStatuses"):
        state = status.get("state") or {}
        if "running" in state or ("waiting" in state and not status.get("ready")):
            stage = FETCH_STAGE.get(status["name"], f"running {status['name']}")
            return Stage("Unknown", C.INITIALIZING, stage + attempt)
    for status in _statuses(pod, "containerStatuses"):
        if status.get("name") == work.container and "running" in (status.get("state") or {}):
            running = attempt_note(job, pods, pod, work.container, done=True)
            return Stage("Unknown", work.reason, work.doing + running)
    if pod.get("status", {}).get("phase") in (None, "Pending"):
        return Stage("Unknown", C.INITIALIZING, "starting the pod" + attempt)
    return Stage("Unknown", work.reason, work.doing + attempt)


def derive_stage(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    suspended_by_user: bool,
    queue_name: str | None,
    secret_fields: dict[str, str],
    work: Workload = TRAINING,
) -> Stage:
    if job is None:
        return Stage("Unknown", C.PENDING, "creating the Job")
    if _condition(job, "Complete"):
        return Stage("True", C.SUCCEEDED_REASON, "finished")
    if _condition(job, "Failed"):
        return _failure_stage(job, pods)
    if job.get("spec", {}).get("suspend"):
        if suspended_by_user:
            return Stage("Unknown", C.SUSPENDED, "spec.runPolicy.suspend is true")
        where = f"Kueue queue {queue_name}" if queue_name else "admission"
        return Stage("Unknown", C.QUEUED, f"waiting for {where}")
    return _running_stage(job, pods, secret_fields, work)


def condition_for(
    stage: Stage, previous: list[dict[str, Any]], generation: int | None, now: str
) -> dict[str, Any]:
    """The Succeeded condition; lastTransitionTime moves only when status moves."""
    old = next((c for c in previous if c.get("type") == C.SUCCEEDED), None)
    changed = old is None or old.get("status") != stage.status
    cond: dict[str, Any] = {
        "type": C.SUCCEEDED,
        "status": stage.status,
        "reason": stage.reason,
        "message": stage.message,
        "lastTransitionTime": now if changed else (old or {}).get("lastTransitionTime", now),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def status_patch(
    ftj: dict[str, Any],
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    secret_fields: dict[str, str],
    now: str,
) -> tuple[Stage, dict[str, Any]]:
    """The stage, and the merge patch of .status that records it."""
    spec = ftj.get("spec", {})
    policy = spec.get("runPolicy") or {}
    status = ftj.get("status") or {}
    generation = ftj.get("metadata", {}).get("generation")
    stage = derive_stage(
        job,
        pods,
        suspended_by_user=bool(policy.get("suspend")),
        queue_name=policy.get("queueName"),
        secret_fields=secret_fields,
    )
    patch: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [condition_for(stage, status.get("conditions") or [], generation, now)],
    }
    if job is not None:
        patch["jobName"] = job["metadata"]["name"]
        job_status = job.get("status") or {}
        if job_status.get("startTime"):
            patch["startTime"] = job_status["startTime"]
        if stage.terminal:
            ended = job_status.get("completionTime") or (
                _condition(job, "Failed") or _condition(job, "Complete") or {}
            ).get("lastTransitionTime")
            patch["completionTime"] = ended or now
    if stage.status == "True":
        _fill_from_trainer(patch, status, trainer_result(pods))
    return stage, patch


def _fill_from_trainer(patch: dict[str, Any], status: dict[str, Any], result: Termination | None) -> None:
    """The trainer's own summary backs up what its status patches may have missed."""
    if result is None:
        return
    if result.message:
        patch["conditions"][0]["message"] = result.message
    for key in ("metrics", "artifacts"):
        theirs = result.data.get(key)
        if isinstance(theirs, dict) and theirs:
            patch[key] = {**theirs, **(status.get(key) or {})}
    progress = status.get("progress") or {}
    if progress.get("percent") != 100:
        patch["progress"] = {**progress, "percent": 100, "etaSeconds": 0}
        if progress.get("totalSteps"):
            patch["progress"]["step"] = progress["totalSteps"]
