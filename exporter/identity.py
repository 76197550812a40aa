"""What an artifact is, as one digest: the same inputs built the same way give the same digest.

An artifact's identity is (adapter content, base model version, format,
quantization, archive, llama.cpp version, build version). When a destination
already holds an artifact with the same digest, the export reuses it instead
of building it again.

- Adapter content: a digest of (path, sha256) of every file — read from the
  adapter's ``_MANIFEST.json`` when Tuneforge uploaded it (no download), else
  from the fetched files.
- Base model version: the hf:// commit (``--base-revision``, or the commit
  the Hub resolves it to), else the base's ``_MANIFEST.json``, else the
  store's listing (path, size, and the etag / md5 / mtime the store keeps).
- ``BUILD_VERSION`` changes when the exporter would build different bytes
  from the same inputs (a merge or packaging fix), so old artifacts are not
  reused by mistake.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

BUILD_VERSION: Final = 1
DIGEST_PREFIX: Final = "sha256:"


@dataclass(frozen=True)
class Identity:
    """The inputs an artifact was built from; ``digest`` names them."""

    adapter: str
    base: str
    format: str
    quantization: str | None
    archive: str
    llama_cpp: str | None
    build: int = BUILD_VERSION

    @property
    def digest(self) -> str:
        return DIGEST_PREFIX + _sha256_json(self.wire())

    def wire(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def files_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Digest of a folder from its (relative path, sha256) pairs, whatever their order."""
    lines = sorted(f"{path}\0{sha}" for path, sha in entries)
    return DIGEST_PREFIX + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def listing_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """Digest of a folder from what a store lists: (relative path, size, version tag)."""
    lines = sorted(f"{path}\0{size}\0{tag}" for path, size, tag in entries)
    return "listing:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def local_files_digest(folder: Path, *, exclude: Iterable[str] = ()) -> str:
    """files_digest of a local folder (hashing each file)."""
    from tuneforge.storage.manifest import hash_file

    skipped = set(exclude)
    entries = []
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in skipped and not rel.startswith("."):
            entries.append((rel, hash_file(path).sha256))
    return files_digest(entries)


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
