"""The GGUF steps' one error type, and the mapping of llama.cpp's failures to reasons a user can act on.

``classify`` is pure: it reads a finished tool's exit status and stderr and
says which known failure it was. The patterns come from real runs of the
pinned converters (tests/exporter/test_gguf_failures.py feeds them real
failures); anything unrecognised stays ``ConversionFailed`` with the tail of
stderr, which a retry may fix.
"""

from __future__ import annotations

import re
import signal
from typing import TYPE_CHECKING, Final, Literal

from tuneforge import exitcodes
from tuneforge.storage.errors import redact

if TYPE_CHECKING:
    from tuneforge.exporter.gguf_verify import Verification

Reason = Literal[
    "UnsupportedArchitecture",
    "UnrecognizedTokenizer",
    "OutOfMemory",
    "ConversionTimeout",
    "VerificationFailed",
    "InvalidModel",
    "LlamaCppMissing",
    "ConversionFailed",
]

EXIT_CODES: Final[dict[str, int]] = {
    "UnsupportedArchitecture": exitcodes.UNSUPPORTED,
    "UnrecognizedTokenizer": exitcodes.UNSUPPORTED,
    "OutOfMemory": exitcodes.OUT_OF_MEMORY,
    # The same work would take as long again: raise the limit instead of retrying.
    "ConversionTimeout": exitcodes.TIMED_OUT,
    # llama.cpp runs this model differently from transformers: a retry gives the same file.
    "VerificationFailed": exitcodes.UNSUPPORTED,
    "InvalidModel": exitcodes.INVALID_INPUT,
    "LlamaCppMissing": exitcodes.UNSUPPORTED,
    # Unknown crashes: a retry on another node may help.
    "ConversionFailed": exitcodes.FAILED,
}

STDERR_TAIL: Final = 1500
"""Characters of a tool's stderr kept in a ConversionFailed message."""


class GgufError(Exception):
    """A GGUF step failed; ``reason`` says how (one CamelCase word), ``str()`` says what to do."""

    def __init__(self, reason: Reason, message: str, *, verification: Verification | None = None) -> None:
        self.reason: Reason = reason
        self.message = redact(message)
        self.exit_code = EXIT_CODES[reason]
        self.verification = verification
        """The failed check, for VerificationFailed."""
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


_ARCH = re.compile(r"(?:Model|Architecture) '?([\w.-]+)'? (?:is )?not supported")
_TOKENIZER_HASH = re.compile(r"chkhsh:\s*([0-9a-f]{64})")
_OOM = re.compile(
    r"MemoryError|std::bad_alloc|Cannot allocate memory|failed to allocate|"
    r"out of memory|failed to map segment|DefaultCPUAllocator: can't allocate|"
    r"Memory allocation still failed",  # OpenBLAS
    re.IGNORECASE,
)
_REQUANT = re.compile(r"requantiz\w*[^\n]*(?:disabled|not supported|refus)", re.IGNORECASE)


def classify(step: str, returncode: int, stderr: str, *, version: str) -> GgufError:
    """The error a failed tool run means. ``step`` names it for the message ("convert_hf_to_gguf.py ...").

    ``version`` is the llama.cpp version string, quoted where the fix depends on it.
    """
    if match := _ARCH.search(stderr):
        return GgufError(
            "UnsupportedArchitecture",
            f"{step}: {version} cannot convert architecture {match.group(1)!r}. "
            "Export format 'merged' or 'adapter' instead, or a base model of an architecture llama.cpp "
            "supports (Llama, Mistral, Qwen2/3, Gemma, Phi-3 and more: convert_hf_to_gguf.py "
            "--print-supported-models lists them).",
        )
    if "BPE pre-tokenizer was not recognized" in stderr:
        found = _TOKENIZER_HASH.search(stderr)
        digest = f" (chkhsh {found.group(1)})" if found else ""
        return GgufError(
            "UnrecognizedTokenizer",
            f"{step}: {version} does not recognise this model's BPE pre-tokenizer{digest}, so it "
            "cannot know how to split text the way the model was trained. Keep the base model's "
            "tokenizer files unchanged when fine-tuning (tokenizer.json, tokenizer_config.json); if the "
            "base model itself is newer than this llama.cpp, use a Tuneforge release with a newer "
            "llama.cpp, or export format 'merged' and convert it with a llama.cpp whose "
            "convert_hf_to_gguf_update.py lists this model.",
        )
    if _OOM.search(stderr) or returncode == -signal.SIGKILL:
        return GgufError(
            "OutOfMemory",
            f"{step} ran out of memory (exit {_status(returncode)}): raise spec.resources.memory of the "
            "ModelExport (conversion streams tensors; allow about twice the largest tensor plus 2 GiB).",
        )
    if _REQUANT.search(stderr):
        return GgufError(
            "InvalidModel",
            f"{step}: {version} refuses to requantize an already quantized GGUF; "
            "quantize from the f16 GGUF (convert_to_gguf(..., outtype='f16')).",
        )
    return GgufError(
        "ConversionFailed",
        f"{step} failed (exit {_status(returncode)}, {version}): {_tail(stderr)}",
    )


def _status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return str(returncode)


def _tail(stderr: str) -> str:
    text = stderr.strip()
    if not text:
        return "no output on stderr"
    return text if len(text) <= STDERR_TAIL else "…" + text[-STDERR_TAIL:]
