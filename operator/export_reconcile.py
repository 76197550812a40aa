"""ModelExports: wait for the source, create the export Job, keep the status true.

The decisions are pure functions in ``exports`` and ``status``; this module
holds the I/O around them, as ``reconcile`` does for FineTuneJobs.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from tuneforge.api import conditions as C
from tuneforge.api.errors import describe
from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.api.modelexport import ModelExport
from tuneforge.capabilities import unsupported_export
from tuneforge.operator import names
from tuneforge.operator.builders.export import EXPORTER, ResolvedSource, build_export_children
from tuneforge.operator.exports import SourceFailed, Waiting, exports_from_templates, resolve_source
from tuneforge.operator.reconcile import Context, now
from tuneforge.operator.status import Stage, Workload, condition_for, derive_stage, trainer_result

EXPORTING = Workload(EXPORTER, C.EXPORTING, "exporting")


def _previous(body: dict[str, Any]) -> tuple[str | None, str | None]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == C.SUCCEEDED:
            return cond.get("status"), cond.get("reason")
    return None, None


def _record(ctx: Context, body: dict[str, Any], stage: Stage) -> dict[str, Any]:
    """The status patch for ``stage``, with an Event when the stage changed."""
    if _previous(body) != (stage.status, stage.reason):
        ctx.post_event(body, "Warning" if stage.status == "False" else "Normal", stage.reason, stage.message)
    generation = body["metadata"].get("generation")
    conditions = (body.get("status") or {}).get("conditions") or []
    return {
        "observedGeneration": generation,
        "conditions": [condition_for(stage, conditions, generation, now())],
    }


def parse_export(body: dict[str, Any]) -> ModelExport | Stage:
    manifest: dict[str, Any] = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    try:
        export = ModelExport.model_validate_json(json.dumps(manifest), strict=True)
    except ValidationError as err:
        return Stage("False", C.INVALID_SPEC, "; ".join(describe(err)) + ". Fix it in a new ModelExport.")
    problems = unsupported_export(export.spec)
    if problems:
        return Stage("False", C.NOT_SUPPORTED, "; ".join(problems) + ".")
    return export


async def start_export(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """Starts the export if its source is ready; returns the status patch."""
    previous = _previous(body)
    if previous[0] in ("True", "False") or (body.get("status") or {}).get("jobName"):
        return {}
    parsed = parse_export(body)
    if isinstance(parsed, Stage):
        return _record(ctx, body, parsed)
    namespace = body["metadata"]["namespace"]
    source_name = parsed.spec.source.fine_tune_job
    ftj = await ctx.kube.get_finetunejob(namespace, source_name) if source_name else None
    decided = resolve_source(parsed, ftj)
    if isinstance(decided, Waiting):
        return _record(ctx, body, Stage("Unknown", C.WAITING_FOR_SOURCE, decided.message))
    if isinstance(decided, SourceFailed):
        return _record(ctx, body, Stage("False", C.SOURCE_FAILED, decided.message))
    assert isinstance(decided, ResolvedSource)
    for manifest in build_export_children(parsed, decided, ctx.config):
        await ctx.kube.ensure(manifest)
    patch = await _export_status(ctx, body)
    patch["jobName"] = names.export_child_name(body["metadata"]["name"])
    return patch


async def source_changed(ctx: Context, namespace: str, name: str) -> None:
    """A FineTuneJob changed: start the export waiting on it, if it is ready now."""
    async with ctx.lock(namespace, f"export/{name}"):
        body = await ctx.kube.get_modelexport(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        patch = await start_export(ctx, body)
        if patch and not _unchanged(body, patch):
            await ctx.kube.patch_modelexport_status(namespace, name, patch)


async def sync_export_status(ctx: Context, namespace: str, name: str, *, job_deleted: bool = False) -> None:
    """Recomputes a ModelExport's status from its Job and Pods."""
    async with ctx.lock(namespace, f"export/{name}"):
        body = await ctx.kube.get_modelexport(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        if _previous(body)[0] in ("True", "False"):
            return
        if job_deleted:
            message = "the export Job was deleted before it finished; delete and re-create the ModelExport"
            patch = _record(ctx, body, Stage("False", C.JOB_DELETED, message))
        else:
            patch = await _export_status(ctx, body)
        if patch and not _unchanged(body, patch):
            await ctx.kube.patch_modelexport_status(namespace, name, patch)


def _unchanged(body: dict[str, Any], patch: dict[str, Any]) -> bool:
    current = body.get("status") or {}
    return all(current.get(k) == v for k, v in patch.items())


async def _export_status(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    job = await ctx.kube.get_job(meta["namespace"], names.export_child_name(meta["name"]))
    pods = await ctx.kube.job_pods(meta["namespace"], meta["name"], names.LABEL_MODELEXPORT) if job else []
    stage = derive_stage(
        job, pods, suspended_by_user=False, queue_name=None, secret_fields={}, work=EXPORTING
    )
    patch = _record(ctx, body, stage)
    if job is not None:
        patch["jobName"] = job["metadata"]["name"]
    if stage.status == "True":
        result = trainer_result(pods, EXPORTER)
        if result is not None:
            if result.message:
                patch["conditions"][0]["message"] = result.message
            artifacts = result.data.get("artifacts")
            if isinstance(artifacts, list) and not (body.get("status") or {}).get("artifacts"):
                patch["artifacts"] = artifacts
    return patch


async def ensure_exports(ctx: Context, body: dict[str, Any]) -> None:
    """Once a FineTuneJob has succeeded, the ModelExports its spec.exports asks for exist."""
    if _previous(body) != ("True", C.SUCCEEDED_REASON) or not (body.get("spec") or {}).get("exports"):
        return
    ftj = FineTuneJob.from_manifest({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    for manifest in exports_from_templates(ftj):
        if await ctx.kube.ensure(manifest):
            ctx.post_event(
                body, "Normal", "ExportCreated", f"created ModelExport {manifest['metadata']['name']}"
            )
