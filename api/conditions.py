"""Condition types and reasons: named constants, one doc line each.

Tekton's pattern: one ``Succeeded`` condition whose status is Unknown while
the run is under way, True at the end of a good run and False at the end of a
bad one, and whose reason names the stage or the failure. ``kubectl get``
columns and Argo CD health read this one place.
"""

from __future__ import annotations

from typing import Final

SUCCEEDED: Final = "Succeeded"
"""The one condition that says where the run stands."""

# Stages while Succeeded is Unknown.
PENDING: Final = "Pending"
"""The operator has seen the resource and is creating its Job."""
SUSPENDED: Final = "Suspended"
"""spec.runPolicy.suspend is true: nothing runs until it is false."""
QUEUED: Final = "Queued"
"""The Job waits for admission (Kueue) or for a node to schedule onto."""
INITIALIZING: Final = "Initializing"
"""Init containers are fetching the base model and the dataset."""
TRAINING: Final = "Training"
"""The trainer container runs."""
RETRYING: Final = "Retrying"
"""A pod failed or was preempted; the Job is starting another."""
WAITING_FOR_SOURCE: Final = "WaitingForSource"
"""A ModelExport waits for its FineTuneJob to succeed (or to exist)."""
EXPORTING: Final = "Exporting"
"""The exporter runs: fetching, merging, converting, verifying, publishing."""

# Ends.
SUCCEEDED_REASON: Final = "Succeeded"
"""Training finished and the artifacts are written."""
FAILED: Final = "Failed"
"""The run failed; the message says where and why."""
INVALID_SPEC: Final = "InvalidSpec"
"""The spec breaks a rule the API server could not check; nothing was started."""
NOT_SUPPORTED: Final = "NotSupportedYet"
"""The spec asks for a feature this version does not implement yet; nothing was started."""
FETCH_MODEL_FAILED: Final = "FetchModelFailed"
"""The fetch-model init container failed (missing object, bad credentials, ...)."""
FETCH_DATASET_FAILED: Final = "FetchDatasetFailed"
"""The fetch-dataset init container failed."""
OUT_OF_MEMORY: Final = "OutOfMemory"
"""A container was OOM-killed; lower batchSize/maxSeqLength or raise resources.memory."""
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
"""spec.runPolicy.activeDeadlineSeconds passed before training finished."""
BACKOFF_LIMIT_EXCEEDED: Final = "BackoffLimitExceeded"
"""Pods failed more often than spec.runPolicy.backoffLimit allows."""
JOB_DELETED: Final = "JobDeleted"
"""The Job disappeared before it finished."""
SOURCE_FAILED: Final = "SourceFailed"
"""A ModelExport's FineTuneJob failed, or left no adapter to export."""

TERMINAL_REASONS: Final = frozenset(
    {
        SUCCEEDED_REASON,
        FAILED,
        INVALID_SPEC,
        NOT_SUPPORTED,
        FETCH_MODEL_FAILED,
        FETCH_DATASET_FAILED,
        OUT_OF_MEMORY,
        DEADLINE_EXCEEDED,
        BACKOFF_LIMIT_EXCEEDED,
        JOB_DELETED,
        SOURCE_FAILED,
    }
)
