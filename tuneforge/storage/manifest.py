"""The `_MANIFEST.json` of an uploaded folder, and file hashing.

A folder upload writes every file, then the manifest last: the manifest is
the commit point. A reader that finds it knows every file it lists was
written whole, and can check each one's size and sha256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tuneforge.storage.errors import StorageError

MANIFEST_NAME: Final = "_MANIFEST.json"
_CHUNK: Final = 1 << 20


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[str, Field(min_length=1, max_length=1024)]
    """Relative to the folder, "/"-separated."""
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
            raise ValueError("must be a relative '/'-separated path without '.', '..' or empty segments")
        return value


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    files: list[ManifestEntry]

    def by_path(self) -> dict[str, ManifestEntry]:
        return {entry.path: entry for entry in self.files}

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def to_json(self) -> str:
        return self.model_dump_json(indent=1) + "\n"


def parse_manifest(text: str, where: str) -> Manifest:
    """Parses a manifest; raises StorageError(Corrupt) saying which field is wrong."""
    try:
        manifest = Manifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise StorageError(
            "Corrupt",
            f"{where} is not a valid manifest: {loc}: {first['msg']} ({exc.error_count()} error(s)); "
            "upload the folder again",
        ) from exc
    paths = [entry.path for entry in manifest.files]
    if len(set(paths)) != len(paths):
        raise StorageError("Corrupt", f"{where} lists a file twice; upload the folder again")
    return manifest


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str
    md5: str | None = None


def hash_file(path: Path, *, md5: bool = False) -> Digest:
    """Size and sha256 (and md5 when asked) of a local file, in one read."""
    sha = hashlib.sha256()
    other = hashlib.md5(usedforsecurity=False) if md5 else None
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            if other is not None:
                other.update(chunk)
            size += len(chunk)
    return Digest(size, sha.hexdigest(), other.hexdigest() if other is not None else None)
