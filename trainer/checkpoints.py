"""Checkpoints in the output store: names, the spec fingerprint, which one to resume from, which to delete.

Pure functions over plain data. The store I/O lives in ``checkpoint_store``,
the training-loop side in ``resumable``.

Layout: ``<spec.output.uri>/checkpoints/checkpoint-<step>/`` holds a Hugging
Face Trainer checkpoint (adapter, optimizer, scheduler, RNG and trainer state)
plus ``tuneforge-checkpoint.json`` (the fingerprint of the spec and data it was
trained with); ``_MANIFEST.json``, written last by ``upload_tree``, makes it
complete. A folder without a manifest is never resumed from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.finetunejob import Checkpoints, FineTuneJob, FineTuneJobSpec

CHECKPOINTS_DIR: Final = "checkpoints"
IDENTITY_FILE: Final = "tuneforge-checkpoint.json"
FINGERPRINT_VERSION: Final = 1
_NAME = re.compile(r"^checkpoint-(\d+)$")

# What decides the weights a run produces, by spec field. Everything else (output, storage,
# resources, runPolicy, evaluation, tracking, exports, checkpoints) may differ between a
# checkpoint and the run resuming from it. The data is fingerprinted by its validated
# training records rather than by its URIs, so moving it does not block a resume and
# changing it behind the same URI does.
TRAINING_FIELDS: Final = (
    "model",
    "dataset",
    "method",
    "trainer",
    "modality",
    "provider",
    "hyperparameters",
    "distributed",
)
# Fields inside those that do not change the weights.
IGNORED_FIELDS: Final = frozenset(
    {
        "model.tokenSecretRef",
        "dataset.source",
        "dataset.evalSource",
        "dataset.tokenSecretRef",
        "hyperparameters.loggingSteps",
    }
)


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def checkpoint_step(name: str) -> int | None:
    """The step of a ``checkpoint-<step>`` folder name, else None."""
    match = _NAME.match(name.rstrip("/"))
    return int(match.group(1)) if match else None


def checkpoints_prefix(output_uri: str) -> str:
    return f"{output_uri.rstrip('/')}/{CHECKPOINTS_DIR}"


def save_kwargs(checkpoints: Checkpoints | None) -> dict[str, Any]:
    """transformers TrainingArguments for spec.checkpoints: every intervalSteps steps, else per epoch."""
    if checkpoints is None:
        return {"save_strategy": "no"}
    out: dict[str, Any] = {
        # Optimizer, scheduler and RNG state too: an exact resume needs them.
        "save_only_model": False,
        # Local folders are handed to the uploader as soon as they are written; the store keeps `keep`.
        "save_total_limit": None,
    }
    if checkpoints.interval_steps is not None:
        return {**out, "save_strategy": "steps", "save_steps": checkpoints.interval_steps}
    return {**out, "save_strategy": "epoch"}


# --- the fingerprint ------------------------------------------------------------------


def _without(value: Any, ignored: frozenset[str], path: str = "") -> Any:
    if not isinstance(value, dict):
        return value
    out = {}
    for key, inner in value.items():
        where = f"{path}.{key}" if path else key
        if where not in ignored:
            out[key] = _without(inner, ignored, where)
    return out


def training_spec(spec: FineTuneJobSpec) -> dict[str, Any]:
    """The part of the spec that decides the trained weights (wire names, defaults filled in)."""
    wire = spec.wire()
    kept = {field: wire[field] for field in TRAINING_FIELDS if field in wire}
    return dict(_without(kept, IGNORED_FIELDS))


def data_digest(records: list[dict[str, Any]]) -> str:
    """sha256 of the validated training records, in order (order decides the shuffle)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def fingerprint(spec: dict[str, Any], data_sha256: str) -> str:
    doc = {"version": FINGERPRINT_VERSION, "spec": spec, "dataSha256": data_sha256}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class CheckpointIdentity(BaseModel):
    """``tuneforge-checkpoint.json``: what a checkpoint was trained with, and by whom."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    version: int = FINGERPRINT_VERSION
    fingerprint: str
    spec: dict[str, Any]
    data_sha256: str = Field(alias="dataSha256")
    step: int | None = None
    job: dict[str, str] = Field(default_factory=dict)
    """namespace, name and uid of the FineTuneJob that wrote it (information only)."""

    @classmethod
    def of(cls, job: FineTuneJob, records: list[dict[str, Any]]) -> CheckpointIdentity:
        spec, data = training_spec(job.spec), data_digest(records)
        meta = job.metadata
        who = {"namespace": meta.namespace or "", "name": meta.name, "uid": meta.uid or ""}
        return cls(fingerprint=fingerprint(spec, data), spec=spec, dataSha256=data, job=who)

    def at_step(self, step: int) -> CheckpointIdentity:
        return self.model_copy(update={"step": step})

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CheckpointIdentity:
        return cls.model_validate_json(text)


def _flatten(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{path}.{key}"))
        return out
    return {path: value}


def _shown(value: Any) -> str:
    return "(unset)" if value is _MISSING else json.dumps(value)


_MISSING = object()


def differences(theirs: CheckpointIdentity, ours: CheckpointIdentity, *, limit: int = 5) -> list[str]:
    """What differs between a checkpoint's spec/data and this run's, one clause each."""
    a, b = _flatten(theirs.spec, "spec"), _flatten(ours.spec, "spec")
    found = [
        f"{path} {_shown(a.get(path, _MISSING))} there, {_shown(b.get(path, _MISSING))} here"
        for path in sorted(set(a) | set(b))
        if a.get(path, _MISSING) != b.get(path, _MISSING)
    ]
    if theirs.data_sha256 != ours.data_sha256:
        there, here = theirs.data_sha256[:12], ours.data_sha256[:12]
        found.append(f"the training records differ (sha256 {there}… there, {here}… here)")
    if not found and theirs.fingerprint != ours.fingerprint:
        found.append(f"fingerprint version {theirs.version} there, {ours.version} here")
    if len(found) > limit:
        found = found[:limit] + [f"and {len(found) - limit} more"]
    return found


# --- what is in the store ---------------------------------------------------------------


@dataclass(frozen=True, order=True)
class StoredCheckpoint:
    """A ``checkpoint-<step>`` folder under the prefix; complete once its manifest is there."""

    step: int
    name: str
    complete: bool


def newest_complete(found: list[StoredCheckpoint]) -> StoredCheckpoint | None:
    complete = [c for c in found if c.complete]
    return max(complete) if complete else None


def to_delete(found: list[StoredCheckpoint], *, keep: int, saved_step: int) -> list[StoredCheckpoint]:
    """After ``saved_step`` is complete: all but the newest ``keep`` complete checkpoints.

    Incomplete folders older than ``saved_step`` go too (a half upload that will never be
    finished); anything newer than ``saved_step`` is left alone: only an earlier attempt
    of this run can have written it, and this run overwrites it when it gets there.
    """
    candidates = [c for c in found if c.step <= saved_step]
    kept = {c.step for c in sorted((c for c in candidates if c.complete), reverse=True)[:keep]}
    return sorted(c for c in candidates if c.step not in kept)
