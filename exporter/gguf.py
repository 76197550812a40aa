"""GGUF that works: llama.cpp's converters and quantizer at one pinned version, and a check by loading.

The exporter's whole GGUF interface; the work lives in ``gguf_*`` modules:

- ``gguf_tools``: where llama.cpp's converters are (unpacked from the pinned
  llama-cpp-python sdist by ``tuneforge llama-cpp install``) and which version;
- ``gguf_convert``: HF model / PEFT adapter -> GGUF (child process, atomic;
  ``prestart_conversions`` starts the converters' processes ahead);
- ``gguf_quantize``: f16 GGUF -> q8_0, q4_K_M, ... (child process, atomic);
- ``gguf_verify`` (+ ``gguf_probe``, its llama.cpp child, and ``gguf_tolerances``):
  logits vs transformers;
- ``gguf_errors`` / ``gguf_process``: failures mapped to reasons, deadlines.

A GGUF export of type T: ``outtype, q = conversion_plan(T)``; ``convert_to_gguf``
to ``outtype``; ``quantize`` to ``q`` when it is not None; ``verify_gguf``.
"""

from __future__ import annotations

from tuneforge.exporter.gguf_convert import (
    CONVERT_TYPES,
    DEFAULT_TIMEOUT_S,
    GgufFile,
    convert_adapter_to_gguf,
    convert_to_gguf,
    prestart_conversions,
)
from tuneforge.exporter.gguf_errors import GgufError
from tuneforge.exporter.gguf_quantize import QUANT_TYPES, conversion_plan, quantize
from tuneforge.exporter.gguf_tolerances import ADAPTER_TOLERANCES, TOLERANCES, Tolerance
from tuneforge.exporter.gguf_tools import llama_cpp_version
from tuneforge.exporter.gguf_verify import Verification, verify_gguf

__all__ = [
    "ADAPTER_TOLERANCES",
    "CONVERT_TYPES",
    "DEFAULT_TIMEOUT_S",
    "QUANT_TYPES",
    "TOLERANCES",
    "GgufError",
    "GgufFile",
    "Tolerance",
    "Verification",
    "conversion_plan",
    "convert_adapter_to_gguf",
    "convert_to_gguf",
    "llama_cpp_version",
    "prestart_conversions",
    "quantize",
    "verify_gguf",
]
