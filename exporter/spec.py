"""The ModelExport the operator wrote, and what the command line adds to it.

For a ``fineTuneJob`` source the operator resolves the job to its adapter
URI and base model and passes them (``--adapter-uri``, ``--base-model-uri``,
``--base-revision``); for an adapter source they may be given or not, but
must not contradict the spec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tuneforge.api import ModelExport
from tuneforge.api.errors import describe
from tuneforge.exporter.artifacts import ArtifactKind, effective_quantization
from tuneforge.exporter.errors import InvalidSpec

ADAPTER_SCHEMES = ("file", "s3", "gs")


@dataclass(frozen=True)
class Request:
    """One export: the resource, its inputs and the artifact it makes."""

    export: ModelExport
    adapter: str
    base: str
    base_revision: str | None

    @property
    def kind(self) -> ArtifactKind:
        spec = self.export.spec
        return ArtifactKind(spec.format, effective_quantization(spec.format, spec.quantization), spec.archive)

    @property
    def namespace(self) -> str:
        return self.export.metadata.namespace or "default"

    @property
    def name(self) -> str:
        return self.export.metadata.name


def load_export(path: Path) -> ModelExport:
    """The ModelExport in the YAML file at ``path``, validated with the API models."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidSpec(f"cannot read the spec file {path}: {err.strerror or err}") from err
    return parse_export(text, source=str(path))


def parse_export(text: str, *, source: str = "spec") -> ModelExport:
    try:
        manifest: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidSpec(f"{source}: not valid YAML: {err}") from err
    if not isinstance(manifest, dict):
        raise InvalidSpec(f"{source}: expected a ModelExport object, got {type(manifest).__name__}")
    try:
        # As the API server validates: JSON types strictly ("8" is not 8).
        return ModelExport.model_validate_json(json.dumps(manifest), strict=True)
    except ValidationError as err:
        raise InvalidSpec(f"{source}: not a valid ModelExport: {'; '.join(describe(err))}") from err


def resolve(
    export: ModelExport, *, adapter: str | None, base: str | None, base_revision: str | None
) -> Request:
    """Combines the spec's source with the command line; InvalidSpec when they disagree or lack something."""
    source = export.spec.source
    adapter = _pick("adapter", "--adapter-uri", source.adapter, adapter, source.fine_tune_job)
    base = _pick("baseModel", "--base-model-uri", source.base_model, base, source.fine_tune_job)
    if adapter.split("://", 1)[0] not in ADAPTER_SCHEMES:
        raise InvalidSpec(f"the adapter URI {adapter} must be a file://, s3:// or gs:// folder")
    if base_revision is not None and not base.startswith("hf://"):
        raise InvalidSpec(f"--base-revision applies to hf:// base models only, not to {base}")
    return Request(export, adapter, base, base_revision)


def _pick(field: str, option: str, in_spec: str | None, given: str | None, job: str | None) -> str:
    if in_spec is not None and given is not None and given != in_spec:
        raise InvalidSpec(f"{option} {given} contradicts spec.source.{field} {in_spec}")
    chosen = given or in_spec
    if chosen is None:
        raise InvalidSpec(
            f"spec.source.fineTuneJob {job!r} needs {option}: the operator resolves the job and passes it"
        )
    return chosen
