"""ModelExport: turn a trained adapter into a shippable artifact and publish it."""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field

from tuneforge.api.base import (
    API_VERSION,
    AdapterUri,
    ApiModel,
    Conditions,
    DnsLabel,
    ModelUri,
    ObjectMeta,
    SecretKeyRef,
)
from tuneforge.api.cel import CelRule
from tuneforge.api.destinations import (
    QUANTIZATION_RULE,
    Archive,
    Destination,
    ExportFormat,
    Quantization,
)
from tuneforge.api.finetunejob import Quantity, Storage

KIND: Final = "ModelExport"
PLURAL: Final = "modelexports"


class ExportSource(ApiModel):
    """What to export: a FineTuneJob's result, or an adapter plus its base model."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.fineTuneJob) != (has(self.adapter) || has(self.baseModel))",
            message="spec.source: set exactly one of fineTuneJob, or adapter with baseModel",
        ),
        CelRule(
            rule="has(self.fineTuneJob) || (has(self.adapter) && has(self.baseModel))",
            message="spec.source: adapter and baseModel go together",
        ),
    )

    fine_tune_job: DnsLabel | None = None
    """Name of a FineTuneJob in this namespace; the export waits until it succeeds."""
    adapter: AdapterUri | None = None
    """URI of a trained adapter."""
    base_model: ModelUri | None = None
    """URI of the adapter's base model."""
    base_model_revision: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    """Git revision of an hf:// base model."""
    token_secret_ref: SecretKeyRef | None = None
    """Secret key holding a Hugging Face token, to read a gated or private hf:// base model."""


class ExportResources(ApiModel):
    """Requests and limits of the export pod (a streaming merge needs little memory)."""

    cpu: Quantity | None = None
    """CPU request and limit, e.g. "4"."""
    memory: Quantity | None = None
    """Memory request and limit, e.g. "16Gi"."""


class ModelExportSpec(ApiModel):
    """What to build and where to publish it."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        QUANTIZATION_RULE,
        CelRule(
            rule="self == oldSelf",
            message="spec is immutable: create a new ModelExport to change it",
        ),
    )

    source: ExportSource
    """The adapter to export."""
    format: ExportFormat = "adapter"
    """adapter, merged (adapter folded into the base), gguf (merged, for llama.cpp),
    or adapter-gguf (the adapter alone as GGUF)."""
    quantization: Quantization | None = None
    """GGUF quantization (format gguf); q8_0 when unset."""
    destinations: Annotated[list[Destination], Field(min_length=1, max_length=16)]
    """Where to publish."""
    archive: Archive = "none"
    """Publish a folder as is, or as one zip file."""
    timeout_seconds: Annotated[int, Field(ge=60, le=86_400)] = 3600
    """Fail with ConversionTimeout when conversion and quantization take longer than this."""
    storage: Storage | None = None
    """Endpoints and credentials for s3:// and gs:// sources and destinations."""
    resources: ExportResources = Field(default_factory=ExportResources)
    """Compute for the export pod."""


class ExportArtifact(ApiModel):
    """One published artifact."""

    destination: Annotated[str, Field(max_length=2048)]
    """The destination as the spec names it (a URI prefix, or hf://org/name for a Hub repo)."""
    uri: Annotated[str, Field(max_length=2048)] | None = None
    """The artifact itself: a file (GGUF, zip) or a folder (adapter, merged model)."""
    format: Annotated[str, Field(max_length=32)] | None = None
    """adapter, merged, gguf or adapter-gguf."""
    quantization: Annotated[str, Field(max_length=32)] | None = None
    """GGUF quantization type."""
    bytes: Annotated[int, Field(ge=0)] | None = None
    """Size."""
    sha256: Annotated[str, Field(max_length=64)] | None = None
    """sha256 of the file (of the manifest, for a folder)."""
    digest: Annotated[str, Field(max_length=128)] | None = None
    """Identity of what was built: adapter content, base revision, format, quantization, llama.cpp version."""
    reused: bool = False
    """True when an identical artifact (same digest) was already there and nothing was rebuilt."""
    llama_cpp_version: Annotated[str, Field(max_length=64)] | None = None
    """llama.cpp version that converted or quantized it (GGUF formats)."""


class ModelExportStatus(ApiModel):
    """Observed state of an export."""

    observed_generation: int | None = None
    """The .metadata.generation the operator last acted on."""
    conditions: Conditions = Field(default_factory=list)
    """Succeeded and others."""
    job_name: Annotated[str, Field(max_length=63)] | None = None
    """The batch/v1 Job running the export."""
    artifacts: Annotated[list[ExportArtifact], Field(max_length=16)] = Field(default_factory=list)
    """One entry per destination."""


class ModelExport(ApiModel):
    """An export of a trained adapter: as is, merged into its base model, or as GGUF.

    The operator runs it as a batch/v1 Job once the source is ready (a
    FineTuneJob that succeeded, or an adapter URI) and publishes the result to
    every destination; .status lists one artifact per destination. The spec
    cannot change after creation.
    """

    api_version: Literal["tuneforge.io/v1alpha1"] = API_VERSION
    kind: Literal["ModelExport"] = KIND
    metadata: ObjectMeta
    spec: ModelExportSpec
    status: ModelExportStatus | None = None
