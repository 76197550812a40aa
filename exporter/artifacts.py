"""What an export publishes, and under which names. Pure: no I/O.

At a URI destination ``D`` (a prefix) the artifact is

- ``D/adapter/`` or ``D/merged/`` (a folder, complete once its
  ``_MANIFEST.json`` is there), or ``D/adapter.zip`` / ``D/merged.zip``
  with ``archive: zip``;
- ``D/model-<quantization>.gguf`` (format gguf) or
  ``D/adapter-<quantization>.gguf`` (format adapter-gguf) — a GGUF is one
  file already and is never zipped;

and beside it ``<artifact>.tuneforge.json``, its record: the digest of what
it was built from and the size and sha256 of what was written. The record is
written last, so a record names an artifact that is complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

RECORD_SUFFIX: Final = ".tuneforge.json"
DEFAULT_GGUF_TYPE: Final = "q8_0"
DEFAULT_ADAPTER_GGUF_TYPE: Final = "f16"
FOLDER_FORMATS: Final = ("adapter", "merged")


def effective_quantization(fmt: str, quantization: str | None) -> str | None:
    """The GGUF type an export makes (the API's defaults applied); None for non-GGUF formats."""
    if fmt == "gguf":
        return quantization or DEFAULT_GGUF_TYPE
    if fmt == "adapter-gguf":
        return quantization or DEFAULT_ADAPTER_GGUF_TYPE
    return None


@dataclass(frozen=True)
class ArtifactKind:
    """The shape of one export's artifact."""

    format: str
    quantization: str | None
    archive: str

    @property
    def is_folder(self) -> bool:
        """A folder published file by file (manifest last), rather than a single file."""
        return self.format in FOLDER_FORMATS and self.archive != "zip"

    @property
    def name(self) -> str:
        """Its name under a URI destination."""
        if self.format in FOLDER_FORMATS:
            return f"{self.format}.zip" if self.archive == "zip" else self.format
        stem = "model" if self.format == "gguf" else "adapter"
        return f"{stem}-{self.quantization}.gguf"

    @property
    def unarchived(self) -> ArtifactKind:
        """The same artifact without the zip: what a Hub repository gets (it holds files, not archives)."""
        return ArtifactKind(self.format, self.quantization, "none")

    @property
    def hub_name(self) -> str | None:
        """The file's name at the top of a Hub repository (None: a folder uploaded as the repository)."""
        return None if self.format in FOLDER_FORMATS else self.name


def record_name(artifact_name: str) -> str:
    return artifact_name + RECORD_SUFFIX


class ArtifactRecord(BaseModel):
    """``<artifact>.tuneforge.json``: what was built from what."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = 1
    digest: Annotated[str, Field(max_length=128)]
    identity: dict[str, str | int]
    format: str
    quantization: str | None = None
    bytes: int = Field(ge=0)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """Of the file; of the folder's _MANIFEST.json for a folder."""
    llama_cpp_version: str | None = Field(
        default=None,
        serialization_alias="llamaCppVersion",
        validation_alias=AliasChoices("llamaCppVersion", "llama_cpp_version"),
    )
    files: dict[str, str] | None = None
    """path -> sha256 of a folder's files, for destinations without a manifest (Hub repositories)."""
    created: str
    """RFC 3339 time of publication."""

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True, indent=1) + "\n"
