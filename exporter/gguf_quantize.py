"""f16 GGUF -> quantized GGUF, with llama.cpp's own quantizer (``llama_model_quantize`` of llama-cpp-python).

The quantizer runs in a child process (``python -m tuneforge.exporter.gguf_quantize
SRC DST TYPE``) for the same reasons the converters do: its memory, its crashes
and its deadline stay out of the exporter. Quantize from f16 (or bf16/f32):
llama.cpp refuses to requantize a quantized file, and its error is mapped to
a clear one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Final

from tuneforge.exporter.gguf_convert import DEFAULT_TIMEOUT_S, GgufFile, partial_file
from tuneforge.exporter.gguf_errors import GgufError
from tuneforge.exporter.gguf_process import run_tool
from tuneforge.exporter.gguf_tools import llama_cpp_version

QUANT_TYPES: Final = ("q8_0", "q6_K", "q5_K_M", "q5_K_S", "q4_K_M", "q4_K_S", "q4_0")
"""What quantize() makes (ModelExport.spec.quantization, less f16/bf16 which the converter writes)."""


def conversion_plan(qtype: str) -> tuple[str, str | None]:
    """How to make a GGUF of ``qtype``: (the converter's outtype, then the quantize type or None).

    f16 and bf16 come straight from the converter; every quantized type is
    made from an f16 conversion (never by requantizing).
    """
    if qtype in ("f16", "bf16", "f32"):
        return qtype, None
    if qtype in QUANT_TYPES:
        return "f16", qtype
    raise ValueError(f"GGUF type {qtype!r} is not one of f16, bf16, f32, {', '.join(QUANT_TYPES)}")


def quantize(f16_file: Path, out: Path, qtype: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> GgufFile:
    """Quantizes ``f16_file`` to ``out`` as ``qtype`` (one of QUANT_TYPES).

    Raises GgufError: InvalidModel (missing input, requantizing), OutOfMemory,
    ConversionTimeout, LlamaCppMissing or ConversionFailed.
    """
    if qtype not in QUANT_TYPES:
        raise ValueError(f"quantization type {qtype!r} is not one of {', '.join(QUANT_TYPES)}")
    f16_file, out = Path(f16_file), Path(out)
    if not f16_file.is_file():
        raise GgufError("InvalidModel", f"{f16_file} does not exist: convert the model to an f16 GGUF first")
    version = llama_cpp_version()
    started = time.monotonic()
    with partial_file(out) as partial:
        run_tool(
            [sys.executable, "-m", __name__, str(f16_file), str(partial), qtype],
            step=f"llama_model_quantize {f16_file.name} -> {qtype}",
            timeout=timeout,
            version=version,
        )
        os.replace(partial, out)
    return GgufFile(out, qtype, out.stat().st_size, version, time.monotonic() - started)


def _quantize_here(src: str, dst: str, qtype: str) -> int:
    """The child's work: one call into llama.cpp. Its log lines go to stderr, where the parent reads them."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}")
    params.nthread = len(os.sched_getaffinity(0))
    status = int(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)))
    if status != 0:
        print(f"llama_model_quantize returned {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_quantize_here(*sys.argv[1:4]))
