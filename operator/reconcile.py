"""The operator's two moves: create a FineTuneJob's children, and keep its status true.

Handlers call these; the decisions themselves are pure functions in
``plan`` and ``status``.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuneforge.api import conditions as C
from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.operator import names
from tuneforge.operator.builders.env import secret_fields
from tuneforge.operator.config import OperatorConfig
from tuneforge.operator.kube import Kube
from tuneforge.operator.plan import Plan, Refusal, plan
from tuneforge.operator.status import Stage, condition_for, status_patch

# (body, type, reason, message) -> None; kopf.event in the operator.
EventPoster = Callable[[dict[str, Any], str, str, str], None]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Context:
    """What the handlers share, kept in kopf's memo."""

    kube: Kube
    config: OperatorConfig
    post_event: EventPoster
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())


def _event_type(stage: Stage) -> str:
    return "Warning" if stage.status == "False" else "Normal"


def _previous(body: dict[str, Any]) -> tuple[str | None, str | None]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == C.SUCCEEDED:
            return cond.get("status"), cond.get("reason")
    return None, None


async def create_children(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """Creates what the FineTuneJob needs (idempotently); returns the status patch."""
    decided = plan(body, ctx.config)
    generation = body["metadata"].get("generation")
    if isinstance(decided, Refusal):
        stage = Stage("False", decided.reason, decided.message)
        if _previous(body) != (stage.status, stage.reason):
            ctx.post_event(body, "Warning", stage.reason, stage.message)
        conditions = (body.get("status") or {}).get("conditions") or []
        return {
            "observedGeneration": generation,
            "conditions": [condition_for(stage, conditions, generation, now())],
        }
    assert isinstance(decided, Plan)
    for manifest in decided.manifests:
        await ctx.kube.ensure(manifest)
    async with ctx.lock(body["metadata"]["namespace"], body["metadata"]["name"]):
        return await _sync(ctx, body, decided.ftj)


async def sync_status(ctx: Context, namespace: str, name: str, *, job_deleted: bool = False) -> None:
    """Recomputes a FineTuneJob's status from its Job and Pods, and records a change."""
    async with ctx.lock(namespace, name):
        body = await ctx.kube.get_finetunejob(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        parsed = plan(body, ctx.config)
        if isinstance(parsed, Refusal):
            return
        patch = await _sync(ctx, body, parsed.ftj, job_deleted=job_deleted)
        if patch:
            await ctx.kube.patch_finetunejob_status(namespace, name, patch)


async def _sync(
    ctx: Context, body: dict[str, Any], ftj: FineTuneJob, *, job_deleted: bool = False
) -> dict[str, Any]:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = _previous(body)
    if previous[0] in ("True", "False"):
        return {}  # the run has ended; what is recorded stays
    job = await ctx.kube.get_job(namespace, names.child_name(name))
    pods = await ctx.kube.job_pods(namespace, name) if job else []
    if job is None and (job_deleted or (body.get("status") or {}).get("jobName")):
        message = "the Job was deleted before it finished; delete and re-create the FineTuneJob"
        stage = Stage("False", C.JOB_DELETED, message)
        conditions = (body.get("status") or {}).get("conditions") or []
        generation = body["metadata"].get("generation")
        patch = {"conditions": [condition_for(stage, conditions, generation, now())]}
    else:
        stage, patch = status_patch(body, job, pods, secret_fields=secret_fields(ftj.spec), now=now())
    if (stage.status, stage.reason) != previous:
        ctx.post_event(body, _event_type(stage), stage.reason, stage.message)
    current = body.get("status") or {}
    if all(current.get(k) == v for k, v in patch.items()):
        return {}
    return patch


async def apply_run_policy(ctx: Context, body: dict[str, Any]) -> None:
    """Carries the mutable part of the spec (suspend, deadline) over to the Job."""
    meta = body["metadata"]
    policy = (body.get("spec") or {}).get("runPolicy") or {}
    job = await ctx.kube.get_job(meta["namespace"], names.child_name(meta["name"]))
    if job is None:
        return
    patch: dict[str, Any] = {}
    suspend = bool(policy.get("suspend"))
    # With a Kueue queue, Kueue owns unsuspending; the user can still pause.
    if suspend or not policy.get("queueName"):
        if bool(job["spec"].get("suspend")) != suspend:
            patch["suspend"] = suspend
    deadline = policy.get("activeDeadlineSeconds")
    if deadline and job["spec"].get("activeDeadlineSeconds") != deadline:
        patch["activeDeadlineSeconds"] = deadline
    if patch:
        await ctx.kube.patch_job(meta["namespace"], names.child_name(meta["name"]), {"spec": patch})
