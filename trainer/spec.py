"""Read the FineTuneJob the operator wrote, and refuse what this trainer cannot do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tuneforge.api import FineTuneJob
from tuneforge.api.errors import describe
from tuneforge.api.finetunejob import DatasetFormat, FineTuneJobSpec, Method, Modality, Provider, TrainerKind
from tuneforge.trainer.errors import InvalidSpec, NotSupportedYet


def load_spec(path: Path) -> FineTuneJob:
    """The FineTuneJob in the YAML file at ``path``, validated with the API models."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidSpec(f"cannot read the spec file {path}: {err.strerror or err}") from err
    return parse_spec(text, source=str(path))


def parse_spec(text: str, *, source: str = "spec") -> FineTuneJob:
    try:
        manifest: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidSpec(f"{source}: not valid YAML: {err}") from err
    if not isinstance(manifest, dict):
        raise InvalidSpec(f"{source}: expected a FineTuneJob object, got {type(manifest).__name__}")
    try:
        return FineTuneJob.from_manifest(manifest)
    except ValidationError as err:
        problems = "; ".join(describe(err))
        raise InvalidSpec(f"{source}: not a valid FineTuneJob: {problems}") from err


def unsupported_fields(spec: FineTuneJobSpec) -> list[str]:
    """What the spec asks for that this trainer does not implement, one line per field."""
    out = []
    if spec.method != Method.lora:
        out.append(f"spec.method {spec.method.value} (supported: lora)")
    if spec.trainer != TrainerKind.sft:
        out.append(f"spec.trainer {spec.trainer.value} (supported: sft)")
    if spec.modality != Modality.text:
        out.append(f"spec.modality {spec.modality.value} (supported: text)")
    if spec.provider != Provider.huggingface:
        out.append(f"spec.provider {spec.provider.value} (supported: huggingface)")
    if spec.dataset.format not in (DatasetFormat.auto, DatasetFormat.alpaca, DatasetFormat.chat):
        out.append(f"spec.dataset.format {spec.dataset.format.value} (supported: alpaca, chat, auto)")
    if spec.checkpoints is not None:
        out.append("spec.checkpoints (checkpointing and resume)")
    if spec.tracking is not None and spec.tracking.wandb is not None:
        out.append("spec.tracking.wandb")
    distributed = spec.distributed
    if distributed is not None and (distributed.nodes > 1 or (distributed.gpus_per_node or 1) > 1):
        out.append("spec.distributed (more than one process)")
    if spec.resources.gpus > 1:
        out.append(f"spec.resources.gpus {spec.resources.gpus} (supported: 0 or 1)")
    return out


def check_supported(spec: FineTuneJobSpec) -> None:
    """Raise NotSupportedYet naming every unsupported field."""
    fields = unsupported_fields(spec)
    if fields:
        raise NotSupportedYet("this trainer does not support yet: " + "; ".join(fields))
