"""Publishing to gs://, s3:// and file:// destinations, so that none ever holds a half-written artifact.

- A folder (adapter, merged model): its old record goes first, then the old
  folder (manifest first), then every file and the new ``_MANIFEST.json``
  last (``tuneforge.storage.upload_tree``): a reader that finds the
  manifest finds every file whole.
- A single file (GGUF, zip): uploaded to a hidden temporary name beside the
  artifact, checked for size, then copied (object stores) or renamed (local
  files) to its name: the artifact's name only ever holds a whole file. The
  temporary object is removed, also when anything fails.
- Then the record ``<artifact>.tuneforge.json``. It is what reuse trusts,
  and it appears only after the artifact is complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from tuneforge.exporter.artifacts import ArtifactKind, ArtifactRecord, record_name
from tuneforge.storage import (
    MANIFEST_NAME,
    StorageError,
    is_complete,
    parse_uri,
    read_text,
    upload_file,
    upload_tree,
)
from tuneforge.storage import write_text as _write_text
from tuneforge.storage.backends import filesystem
from tuneforge.storage.manifest import hash_file
from tuneforge.storage.translate import translating
from tuneforge.storage.uri import StorageUri

log = logging.getLogger(__name__)

PARTIAL_MARK = ".partial-"


@dataclass(frozen=True)
class Published:
    """What is now at the destination."""

    uri: str
    bytes: int
    sha256: str


def artifact_uri(destination: str, kind: ArtifactKind) -> str:
    """Where an artifact of ``kind`` goes under the destination prefix."""
    return str(parse_uri(destination).join(kind.name))


def record_uri(artifact: str) -> str:
    uri = parse_uri(artifact)
    return str(uri.parent.join(record_name(uri.name)))


def read_record(artifact: str) -> ArtifactRecord | None:
    """The record beside ``artifact``; None when there is none (or it is unreadable: then it is rebuilt)."""
    where = record_uri(artifact)
    try:
        text = read_text(where)
    except StorageError as err:
        if err.reason == "NotFound":
            return None
        if err.reason == "Corrupt":
            log.warning("ignoring %s: %s", where, err)
            return None
        raise
    try:
        return ArtifactRecord.model_validate_json(text)
    except ValidationError as err:
        log.warning("ignoring %s, which is not an artifact record: %s", where, err.errors()[0]["msg"])
        return None


def holding(artifact: str, kind: ArtifactKind, digest: str) -> ArtifactRecord | None:
    """The record of the complete artifact with ``digest`` at ``artifact``, if that is what is there."""
    record = read_record(artifact)
    if record is None or record.digest != digest:
        return None
    if kind.is_folder:
        if not is_complete(artifact):
            return None
        manifest = read_text(str(parse_uri(artifact).join(MANIFEST_NAME)))
        return record if _sha256(manifest.encode()) == record.sha256 else None
    uri = parse_uri(artifact)
    with translating(uri, "check"):
        fs = filesystem(uri)
        if not fs.exists(uri.fs_path):
            return None
        size = int(fs.size(uri.fs_path))
    return record if size == record.bytes else None


def publish(local: Path, artifact: str, kind: ArtifactKind) -> Published:
    """Puts the local artifact (a folder or a file) at ``artifact``; its old record is removed first."""
    _remove(record_uri(artifact))
    if kind.is_folder:
        return _publish_folder(local, artifact)
    return _publish_file(local, artifact)


def write_record(artifact: str, record: ArtifactRecord) -> None:
    """The commit point of a publication: from now on the artifact may be reused."""
    _write_text(record_uri(artifact), record.to_json())


def _publish_folder(local: Path, artifact: str) -> Published:
    uri = parse_uri(artifact)
    _remove(str(uri.join(MANIFEST_NAME)))  # the old folder stops counting as complete first
    with translating(uri, "clear"):
        fs = filesystem(uri)
        if fs.exists(uri.fs_path):
            fs.rm(uri.fs_path, recursive=True)
    result = upload_tree(local, artifact)
    manifest = read_text(result.manifest_uri)
    return Published(str(uri), result.bytes, _sha256(manifest.encode()))


def _publish_file(local: Path, artifact: str) -> Published:
    uri = parse_uri(artifact)
    digest = hash_file(Path(local))
    _remove_stale_partials(uri)
    partial = uri.parent.join(f".{uri.name}{PARTIAL_MARK}{uuid.uuid4().hex[:12]}")
    try:
        upload_file(local, str(partial))
        with translating(uri, "publish to"):
            fs = filesystem(uri)
            size = int(fs.size(partial.fs_path))
            if size != digest.size:
                raise StorageError(
                    "Corrupt",
                    f"uploading {local} to {partial} gave {size} bytes instead of {digest.size}; retry",
                )
            if uri.scheme == "file":
                os.replace(partial.local_path, uri.local_path)
            else:
                fs.copy(partial.fs_path, uri.fs_path)
    finally:
        _remove_quietly(str(partial))
    return Published(str(uri), digest.size, digest.sha256)


def _remove(target: str) -> None:
    uri = parse_uri(target)
    with translating(uri, "remove"):
        fs = filesystem(uri)
        if fs.exists(uri.fs_path):
            fs.rm_file(uri.fs_path)


def _remove_stale_partials(uri: StorageUri) -> None:
    """Temporary objects a killed earlier publication of this artifact left behind."""
    prefix = f".{uri.name}{PARTIAL_MARK}"
    with translating(uri.parent, "list"):
        fs = filesystem(uri)
        try:
            names = [p.rstrip("/").rpartition("/")[2] for p in fs.ls(uri.parent.fs_path, detail=False)]
        except FileNotFoundError:
            return
    for name in names:
        if name.startswith(prefix):
            _remove_quietly(str(uri.parent.join(name)))


def _remove_quietly(target: str) -> None:
    """Cleanup that must not hide the error being raised (a leftover temporary name is harmless)."""
    try:
        _remove(target)
    except StorageError as err:
        log.warning("could not remove the temporary %s: %s", target, err)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
