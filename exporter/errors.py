"""The exporter's failures: each carries its termination reason and exit code.

Storage failures stay :class:`tuneforge.storage.StorageError` (their reasons
and codes are the storage layer's) and GGUF failures stay ``gguf_errors.GgufError``;
``tuneforge export`` maps all three the same way (reason, message, exit code).
"""

from __future__ import annotations

from tuneforge import exitcodes
from tuneforge.api import conditions
from tuneforge.termination import ReportedFailure


class ExportError(ReportedFailure):
    """A failure ``tuneforge export`` reports as ``reason``/``message`` and exits with ``exit_code``."""

    reason = "ExportFailed"
    exit_code = exitcodes.FAILED


class InvalidSpec(ExportError):
    """The ModelExport (or the command line the operator built) is invalid."""

    reason = conditions.INVALID_SPEC
    exit_code = exitcodes.INVALID_INPUT


class NotSupportedYet(ExportError):
    """The export asks for something this version cannot do."""

    reason = conditions.NOT_SUPPORTED
    exit_code = exitcodes.UNSUPPORTED


class AdapterInvalid(ExportError):
    """The adapter folder is not a LoRA adapter this exporter can read, or does not fit the base model."""

    reason = "AdapterInvalid"
    exit_code = exitcodes.INVALID_INPUT


class ModelInvalid(ExportError):
    """The base model folder cannot be merged into (no safetensors weights, broken index, ...)."""

    reason = "ModelInvalid"
    exit_code = exitcodes.INVALID_INPUT


class OutOfMemory(ExportError):
    """The exporter ran out of memory."""

    reason = conditions.OUT_OF_MEMORY
    exit_code = exitcodes.OUT_OF_MEMORY


class PublishFailed(ExportError):
    """Publishing to a destination failed in a way the storage layer does not classify."""

    reason = "PublishFailed"
    exit_code = exitcodes.FAILED
