"""ModelExport decisions, as pure functions: is the source ready, and what do exports look like."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneforge.api import conditions as C
from tuneforge.api.base import API_VERSION
from tuneforge.api.finetunejob import KIND as FTJ_KIND
from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.api.modelexport import KIND as EXPORT_KIND
from tuneforge.api.modelexport import ModelExport
from tuneforge.operator import names
from tuneforge.operator.builders.export import ResolvedSource


@dataclass(frozen=True)
class Waiting:
    """The source is not ready yet; the export starts when it is."""

    message: str


@dataclass(frozen=True)
class SourceFailed:
    """The source will never be ready."""

    message: str


def _succeeded(ftj: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (ftj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == C.SUCCEEDED:
            return dict(cond)
    return None


def resolve_source(
    export: ModelExport, ftj: dict[str, Any] | None
) -> ResolvedSource | Waiting | SourceFailed:
    """Where the adapter and base model are, once the source is ready."""
    source = export.spec.source
    if source.fine_tune_job is None:
        assert source.adapter is not None and source.base_model is not None  # the CEL rules guarantee it
        token = source.token_secret_ref
        return ResolvedSource(
            adapter=source.adapter,
            base_model=source.base_model,
            base_revision=source.base_model_revision,
            token_secret=(token.name, token.key) if token else None,
            storage=export.spec.storage,
        )
    name = source.fine_tune_job
    if ftj is None:
        return Waiting(f"waiting for FineTuneJob {name}, which does not exist (yet)")
    cond = _succeeded(ftj)
    if cond is None or cond.get("status") == "Unknown":
        stage = (cond or {}).get("reason", "Pending")
        percent = ((ftj.get("status") or {}).get("progress") or {}).get("percent")
        where = f"{stage}, {percent}%" if percent is not None else stage
        return Waiting(f"waiting for FineTuneJob {name} to succeed (now: {where})")
    if cond.get("status") == "False":
        return SourceFailed(
            f"FineTuneJob {name} failed ({cond.get('reason')}): {cond.get('message', '')}".rstrip(": ")
        )
    trained = FineTuneJob.from_manifest({k: ftj[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    artifacts = (ftj.get("status") or {}).get("artifacts") or {}
    adapter = artifacts.get("adapter")
    if not adapter and artifacts.get("model"):
        return SourceFailed(
            f"FineTuneJob {name} is a full fine-tune: its model is at {artifacts['model']} and it has no "
            "adapter to export; exports start from a LoRA or QLoRA adapter (use the model as it is, "
            "or train with method lora)"
        )
    if not adapter:
        return SourceFailed(f"FineTuneJob {name} succeeded but recorded no adapter in status.artifacts")
    token = trained.spec.model.token_secret_ref
    return ResolvedSource(
        adapter=adapter,
        base_model=trained.spec.model.source,
        base_revision=trained.spec.model.revision,
        token_secret=(token.name, token.key) if token else None,
        storage=trained.spec.storage,
        fine_tune_job=name,
    )


def export_name(ftj_name: str, template_name: str) -> str:
    return f"{ftj_name}-{template_name}"


def exports_from_templates(ftj: FineTuneJob) -> list[dict[str, Any]]:
    """The ModelExports ``spec.exports`` asks for, owned by the FineTuneJob."""
    meta = ftj.metadata
    out = []
    for template in ftj.spec.exports or []:
        spec: dict[str, Any] = {
            "source": {"fineTuneJob": meta.name},
            "format": template.format,
            "destinations": [d.wire() for d in template.destinations],
            "archive": template.archive,
        }
        if template.quantization:
            spec["quantization"] = template.quantization
        if ftj.spec.storage:
            spec["storage"] = ftj.spec.storage.wire()
        out.append(
            {
                "apiVersion": API_VERSION,
                "kind": EXPORT_KIND,
                "metadata": {
                    "name": export_name(meta.name, template.name),
                    "namespace": meta.namespace,
                    "labels": names.labels(meta.name, "export"),
                    "ownerReferences": [names.owner_reference(FTJ_KIND, meta.name, meta.uid or "")],
                },
                "spec": spec,
            }
        )
    return out
