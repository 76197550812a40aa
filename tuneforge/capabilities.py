"""What this version of Tuneforge can do, in one table both sides read.

The schema accepts the whole API (so it does not change as features land).
The operator refuses a spec that asks for something not implemented yet
(condition reason NotSupportedYet, naming the field) before any pod starts,
and the trainer refuses it again should it ever be handed one. When a
feature lands, its line here changes — nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from tuneforge.api.finetunejob import FineTuneJobSpec
from tuneforge.api.modelexport import ModelExportSpec

Getter = Callable[[FineTuneJobSpec], str]
Check = Callable[[FineTuneJobSpec], bool]

SUPPORTED_SOURCE_SCHEMES = ("file", "s3", "gs")

# field -> (value getter, supported values)
SUPPORTED_CHOICES: dict[str, tuple[Getter, tuple[str, ...]]] = {
    "spec.method": (lambda s: s.method.value, ("lora",)),
    "spec.trainer": (lambda s: s.trainer.value, ("sft",)),
    "spec.modality": (lambda s: s.modality.value, ("text",)),
    "spec.provider": (lambda s: s.provider.value, ("huggingface",)),
    "spec.dataset.format": (lambda s: s.dataset.format.value, ("auto", "alpaca", "chat")),
    "spec.cleanupPolicy": (lambda s: s.cleanup_policy, ("Retain",)),
}

# field -> (is it set?, what to say)
NOT_YET: dict[str, tuple[Check, str]] = {
    "spec.model.revision": (lambda s: s.model.revision is not None, "it applies to hf:// sources"),
    "spec.checkpoints": (lambda s: s.checkpoints is not None, "checkpointing and resume"),
    "spec.exports": (lambda s: s.exports is not None, "create ModelExports by hand for now"),
    "spec.tracking": (lambda s: s.tracking is not None, "experiment tracking"),
    "spec.distributed": (
        lambda s: (
            s.distributed is not None and (s.distributed.nodes > 1 or (s.distributed.gpus_per_node or 1) > 1)
        ),
        "several processes or nodes",
    ),
    "spec.resources.gpus": (lambda s: s.resources.gpus > 1, "more than 1 GPU per pod"),
}


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0]


def unsupported(spec: FineTuneJobSpec) -> list[str]:
    """Messages, one per field set to something this version cannot do yet."""
    return unsupported_sources(spec) + unsupported_training(spec)


def unsupported_training(spec: FineTuneJobSpec) -> list[str]:
    """What the trainer itself cannot do yet (sources are the fetch step's business)."""
    problems = []
    for field, (get, allowed) in SUPPORTED_CHOICES.items():
        value = get(spec)
        if value not in allowed:
            problems.append(f"{field} {value} is not supported yet (supported: {', '.join(allowed)})")
    for field, (is_set, what) in NOT_YET.items():
        if is_set(spec):
            problems.append(f"{field} is not supported yet ({what})")
    return problems


def unsupported_sources(spec: FineTuneJobSpec) -> list[str]:
    """Source URIs whose scheme the fetch step cannot read yet."""
    problems = []
    for field, uri in (
        ("spec.model.source", spec.model.source),
        ("spec.dataset.source", spec.dataset.source),
        ("spec.dataset.evalSource", spec.dataset.eval_source),
    ):
        if uri is not None and _scheme(uri) not in SUPPORTED_SOURCE_SCHEMES:
            listed = ", ".join(f"{s}://" for s in SUPPORTED_SOURCE_SCHEMES)
            problems.append(f"{field}: {_scheme(uri)}:// is not supported yet (supported: {listed})")
    return problems


# ModelExport: formats the exporter builds.
SUPPORTED_EXPORT_FORMATS: tuple[str, ...] = ("adapter", "merged", "gguf", "adapter-gguf")


def unsupported_export(spec: ModelExportSpec) -> list[str]:
    """What a ModelExport asks for that this version cannot do yet."""
    problems = []
    if spec.format not in SUPPORTED_EXPORT_FORMATS:
        listed = ", ".join(SUPPORTED_EXPORT_FORMATS)
        problems.append(f"spec.format {spec.format} is not supported yet (supported: {listed})")
    for field, uri in (
        ("spec.source.adapter", spec.source.adapter),
        ("spec.source.baseModel", spec.source.base_model),
    ):
        if uri is not None and _scheme(uri) not in SUPPORTED_SOURCE_SCHEMES:
            listed = ", ".join(f"{s}://" for s in SUPPORTED_SOURCE_SCHEMES)
            problems.append(f"{field}: {_scheme(uri)}:// is not supported yet (supported: {listed})")
    return problems
