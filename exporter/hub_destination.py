"""Publishing to a Hugging Face Hub repository, through ``tuneforge.storage.publish_to_hub``.

One commit holds the artifact, its record and the model card, so the
repository shows all of them or none (a Hub commit is atomic). Layout:

- adapter / merged: the folder's files at the top of the repository;
- gguf / adapter-gguf: the GGUF file at the top of the repository;
- ``<artifact>.tuneforge.json`` beside them: the record reuse reads
  (``adapter.tuneforge.json``, ``model-q8_0.gguf.tuneforge.json``).

Reuse: the record's digest must match, and every file it lists must be in
the repository with its sha256 (``hub_file_sha256``).

The token of destination ``i`` (its position in ``spec.destinations``)
comes from the environment variable ``HF_TOKEN_DESTINATION_<i>``, which the
export Job fills from that destination's ``tokenSecretRef`` (``HF_TOKEN`` is
the source's read token, never used to write).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from tuneforge.exporter.artifacts import ArtifactKind, ArtifactRecord, record_name
from tuneforge.exporter.destinations import Published
from tuneforge.storage import MANIFEST_NAME, StorageError, hub_file_sha256, publish_to_hub
from tuneforge.storage.hub import LIBRARY_NAME, HubContext, HubRepo, hub_errors, hub_settings

TOKEN_ENV_PREFIX: Final = "HF_TOKEN_DESTINATION_"
README: Final = "README.md"
# Not part of a published folder: the store's manifest (the commit is the Hub's), the card (ours replaces it).
LEFT_OUT: Final = frozenset({MANIFEST_NAME, README})


def token_env(index: int) -> str:
    """The environment variable holding the token of destination ``index``."""
    return f"{TOKEN_ENV_PREFIX}{index}"


def hub_token(index: int, env: Mapping[str, str] = os.environ) -> str:
    return (env.get(token_env(index)) or "").strip()


def token_field(index: int) -> str:
    return f"spec.destinations[{index}].huggingface.tokenSecretRef"


@dataclass(frozen=True)
class HubTarget:
    """One Hub destination of an export."""

    index: int
    repo: str
    private: bool

    @property
    def destination(self) -> str:
        return f"hf://{self.repo}"

    def artifact_uri(self, kind: ArtifactKind) -> str:
        return f"hf://{self.repo}/{kind.hub_name}" if kind.hub_name else self.destination

    @property
    def token(self) -> str:
        return hub_token(self.index)


def folder_files(folder: Path) -> dict[str, Path]:
    """The files of a folder artifact as they land in a repository."""
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in LEFT_OUT and not any(p.startswith(".") for p in rel.split("/")):
            files[rel] = path
    return files


def holding(target: HubTarget, kind: ArtifactKind, digest: str) -> ArtifactRecord | None:
    """The record of the artifact with ``digest`` in the repository, when all its files are there."""
    record = _read_record(target, record_name(kind.name))
    if record is None or record.digest != digest:
        return None
    expected = record.files or ({kind.hub_name: record.sha256} if kind.hub_name else {})
    if not expected:
        return None
    for path, sha256 in expected.items():
        if (
            hub_file_sha256(target.repo, path, token=target.token, token_field=token_field(target.index))
            != sha256
        ):
            return None
    return record


def _read_record(target: HubTarget, name: str) -> ArtifactRecord | None:
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download

    settings = hub_settings(target.token or None)
    repo = HubRepo("model", target.repo, name)
    ctx = HubContext(repo=repo, action="read", settings=settings, token_field=token_field(target.index))
    with tempfile.TemporaryDirectory(prefix="tuneforge-hub-record-") as tmp, hub_errors(ctx):
        try:
            path = hf_hub_download(
                target.repo,
                name,
                local_dir=tmp,
                token=settings.token,
                endpoint=settings.endpoint,
                library_name=LIBRARY_NAME,
            )
        except (hf.RepositoryNotFoundError, hf.RevisionNotFoundError, hf.EntryNotFoundError) as err:
            if isinstance(err, hf.GatedRepoError):
                raise
            return None
        text = Path(path).read_text(encoding="utf-8")
    try:
        return ArtifactRecord.model_validate_json(text)
    except ValidationError:
        return None


def publish(
    local: Path, target: HubTarget, kind: ArtifactKind, record: ArtifactRecord, *, card: str, staging: Path
) -> Published:
    """One commit: the artifact, its record (with the folder's file list) and the model card."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        files = folder_files(local) if local.is_dir() else {local.name: local}
        for rel, path in files.items():
            _link(path, staging / rel)
        (staging / record_name(kind.name)).write_text(record.to_json(), encoding="utf-8")
        result = publish_to_hub(
            staging,
            target.repo,
            token=target.token,
            private=target.private,
            readme=card,
            commit_message=f"Tuneforge export: {kind.name} ({record.digest[:19]})",
            token_field=token_field(target.index),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not result.commit_sha:
        raise StorageError("TransferFailed", f"publishing to {target.destination} gave no commit")
    return Published(target.artifact_uri(kind), record.bytes, record.sha256)


def _link(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)
