"""The trainer's failures: each carries its termination reason and exit code."""

from __future__ import annotations

from typing import Any

from tuneforge import exitcodes
from tuneforge.api import conditions
from tuneforge.termination import ReportedFailure


class TrainerError(ReportedFailure):
    """A failure the trainer reports as ``reason``/``message`` and exits with ``exit_code``."""

    reason = "TrainingFailed"
    exit_code = exitcodes.FAILED

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.details: dict[str, Any] = {}
        """More fields for the termination message (JSON-serialisable)."""


class InvalidSpec(TrainerError):
    """The FineTuneJob spec is invalid, or does not fit the model."""

    reason = conditions.INVALID_SPEC
    exit_code = exitcodes.INVALID_INPUT


class DatasetInvalid(TrainerError):
    """The dataset is missing, unreadable or holds nothing usable."""

    reason = "DatasetInvalid"
    exit_code = exitcodes.INVALID_INPUT


class ModelInvalid(TrainerError):
    """The base model folder cannot be loaded."""

    reason = "ModelInvalid"
    exit_code = exitcodes.INVALID_INPUT


class NotSupportedYet(TrainerError):
    """The spec asks for a feature this trainer does not implement."""

    reason = conditions.NOT_SUPPORTED
    exit_code = exitcodes.UNSUPPORTED


class UnsupportedHardware(TrainerError):
    """The spec asks for something this machine cannot do (bf16 on CPU, FlashAttention without CUDA)."""

    reason = "UnsupportedHardware"
    exit_code = exitcodes.UNSUPPORTED


class OutOfMemory(TrainerError):
    """Training ran out of (GPU) memory."""

    reason = conditions.OUT_OF_MEMORY
    exit_code = exitcodes.OUT_OF_MEMORY


OOM_HINT = (
    "lower spec.hyperparameters.batchSize or maxSeqLength, turn on gradientCheckpointing, "
    "or raise spec.resources.memory (or use a larger GPU)"
)
