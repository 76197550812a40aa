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

SUPPORTED_SOURCE_SCHEMES = ("file", "s3", "gs", "pvc", "hf", "https")

# field -> (value getter, supported values)
SUPPORTED_CHOICES: dict[str, tuple[Getter, tuple[str, ...]]] = {
    "spec.method": (lambda s: s.method.value, ("lora", "qlora", "full")),
    "spec.trainer": (lambda s: s.trainer.value, ("sft", "dpo")),
    "spec.modality": (lambda s: s.modality.value, ("text", "vision")),
    # unsloth: used when the trainer image has it and the pod a GPU; refused by the trainer otherwise.
    "spec.provider": (lambda s: s.provider.value, ("huggingface", "unsloth")),
    "spec.dataset.format": (
        lambda s: s.dataset.format.value,
        ("auto", "alpaca", "chat", "prompt-completion", "preference"),
    ),
    "spec.cleanupPolicy": (lambda s: s.cleanup_policy, ("Retain",)),
}

# field -> (is it set?, what to say)
NOT_YET: dict[str, tuple[Check, str]] = {
    "spec.model.revision": (
        lambda s: s.model.revision is not None and not s.model.source.startswith("hf://"),
        "it applies to hf:// sources only",
    ),
    # DPO's reference is the base model with the adapter switched off; full fine-tuning has no adapter.
    "spec.trainer dpo with spec.method full": (
        lambda s: s.trainer.value == "dpo" and s.method.value == "full",
        "the reference would be a second full copy of the model; use lora or qlora",
    ),
    "spec.modality vision with spec.trainer dpo": (
        lambda s: s.modality.value == "vision" and s.trainer.value == "dpo",
        "preference tuning of vision-language models",
    ),
    "spec.modality vision with spec.provider unsloth": (
        lambda s: s.modality.value == "vision" and s.provider.value == "unsloth",
        "use provider huggingface for vision-language models",
    ),
    # Several GPUs and nodes run (one trainer process per GPU); these combinations do not yet.
    "spec.distributed.gpusPerNode": (
        lambda s: (
            s.resources.gpus > 0
            and s.distributed is not None
            and s.distributed.gpus_per_node not in (None, s.resources.gpus)
        ),
        "one trainer process per GPU: leave it unset or equal to spec.resources.gpus",
    ),
    "spec.checkpoints with several trainer processes": (
        lambda s: s.checkpoints is not None and _processes(s) > 1,
        "checkpoints and resume of multi-GPU or multi-node runs; train on one GPU, or without checkpoints",
    ),
    "spec.distributed.strategy fsdp with spec.method qlora": (
        lambda s: s.method.value == "qlora" and _processes(s) > 1 and _strategy(s) == "fsdp",
        "sharding a 4-bit base model; use strategy ddp",
    ),
    # The exporter starts from an adapter; a full fine-tune's model is published by spec.output as is.
    "spec.exports with spec.method full": (
        lambda s: bool(s.exports) and s.method.value == "full",
        "a full fine-tune writes the whole model to status.artifacts.model; export from lora or qlora",
    ),
    "spec.provider unsloth with several trainer processes": (
        lambda s: s.provider.value == "unsloth" and _processes(s) > 1,
        "unsloth trains on one GPU; use provider huggingface",
    ),
}


def _processes(spec: FineTuneJobSpec) -> int:
    """Trainer processes: nodes x (gpusPerNode, else one per GPU), as in operator/builders/distributed.py."""
    dist = spec.distributed
    per_node = dist.gpus_per_node if dist is not None and dist.gpus_per_node else max(spec.resources.gpus, 1)
    return (dist.nodes if dist is not None else 1) * per_node


def _strategy(spec: FineTuneJobSpec) -> str:
    return spec.distributed.strategy if spec.distributed is not None else "ddp"


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
        # pvc:// sources are mounted read-only into the export pod (operator/builders/export.py).
        if uri is not None and _scheme(uri) not in SUPPORTED_SOURCE_SCHEMES:
            listed = ", ".join(f"{x}://" for x in SUPPORTED_SOURCE_SCHEMES)
            problems.append(f"{field}: {_scheme(uri)}:// is not supported yet (supported: {listed})")
    return problems
