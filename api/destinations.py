"""Where exports are published, and what they are: shared by ModelExport and FineTuneJob.spec.exports."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from tuneforge.api.base import ApiModel, OutputUri, SecretKeyRef
from tuneforge.api.cel import CelRule

ExportFormat = Literal["adapter", "merged", "gguf", "adapter-gguf"]
Quantization = Literal["f16", "bf16", "q8_0", "q6_K", "q5_K_M", "q5_K_S", "q4_K_M", "q4_K_S", "q4_0"]
Archive = Literal["none", "zip"]

QUANTIZATION_RULE = CelRule(
    rule="!has(self.quantization) || self.format == 'gguf' || "
    "(self.format == 'adapter-gguf' && self.quantization in ['f16', 'bf16', 'q8_0'])",
    message="spec.quantization applies to format gguf (any type) and adapter-gguf (f16, bf16, q8_0)",
    field_path=".quantization",
)


class HubDestination(ApiModel):
    """A Hugging Face Hub model repository."""

    repo: Annotated[
        str, Field(max_length=96, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
    ]
    """Repository id, org/name."""
    private: bool = True
    """Create the repository as private."""
    token_secret_ref: SecretKeyRef
    """Secret key holding a Hub token with write access."""


class Destination(ApiModel):
    """One place to publish to: a URI or a Hub repository."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.uri) != has(self.huggingface)",
            message="each destination sets exactly one of uri and huggingface",
        ),
    )

    uri: OutputUri | None = None
    """gs://, s3:// or file:// prefix."""
    huggingface: HubDestination | None = None
    """A Hugging Face Hub repository."""
