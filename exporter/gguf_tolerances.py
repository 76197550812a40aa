"""How far a GGUF's logits may be from transformers' float32 logits, per GGUF type.

Two limits, both on the logits of the first generated token:

- ``max_abs``: max |Δlogit| over the vocabulary (the figure the issue quotes);
  absolute while the reference logits' standard deviation is at most 1, and
  proportional to it above, as quantization error scales with the logits;
- ``rel_rms``: RMS(Δlogit) / std(reference logits), scale-free. It tells a
  noisy quantization (q4 types: up to 0.63 here) from another model (1.3)
  where the max-abs limit alone cannot on a small model.

Measured on the tiny Llama (hidden 256, logits std 0.32) and on it with a
random LoRA merged in, 5 prompts each, llama.cpp 0c1e570; the limits are the
worst case times 1.5 to 4 (docs/architecture.md, "GGUF verification", has
the table). Larger models quantize with smaller relative error, so the limits
only get looser for them, never falsely tight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    max_abs: float
    """Max |Δlogit| for reference logits with a standard deviation of 1 or less."""
    rel_rms: float
    """Max RMS(Δlogit) / std(reference logits)."""


TOLERANCES: Final[dict[str, Tolerance]] = {
    # type: Tolerance(max_abs, rel_rms)       worst seen: max_abs, rel_rms
    "f32": Tolerance(0.005, 0.01),  #          0.0007, 0.001
    "f16": Tolerance(0.01, 0.01),  #           0.0023, 0.002
    "bf16": Tolerance(0.04, 0.03),  #          0.015,  0.012
    "q8_0": Tolerance(0.25, 0.08),  #          0.038,  0.033 (the issue saw 0.12)
    "q6_K": Tolerance(0.3, 0.25),  #           0.135,  0.120
    "q5_K_M": Tolerance(0.45, 0.35),  #        0.197,  0.171
    "q5_K_S": Tolerance(0.5, 0.35),  #         0.234,  0.182
    "q4_K_M": Tolerance(1.5, 0.9),  #          0.761,  0.627 (the issue saw 0.58)
    "q4_K_S": Tolerance(1.6, 0.9),  #          0.836,  0.599
    "q4_0": Tolerance(1.4, 0.9),  #            0.618,  0.534
}
"""A GGUF of the model, of this type."""

ADAPTER_TOLERANCES: Final[dict[str, Tolerance]] = {
    "f32": Tolerance(0.01, 0.01),  #           0.0016, 0.0013
    "f16": Tolerance(0.01, 0.01),  #           0.0024, 0.0017 (the issue saw 0.0037)
    "bf16": Tolerance(0.04, 0.03),  #          0.016,  0.011
    "q8_0": Tolerance(0.08, 0.06),  #          0.031,  0.026
}
"""An f16 (or f32) GGUF of the base model plus an adapter GGUF of this type, against the merged model."""

# llama.cpp's general.file_type values (enum llama_ftype) of the types above.
FILE_TYPES: Final[dict[int, str]] = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    7: "q8_0",
    14: "q4_K_S",
    15: "q4_K_M",
    16: "q5_K_S",
    17: "q5_K_M",
    18: "q6_K",
    32: "bf16",
}


def tolerance_for(qtype: str, reference_logits: np.ndarray, *, adapter: bool = False) -> Tolerance:
    """The limits for ``qtype``, max_abs scaled to the reference logits' spread."""
    table = ADAPTER_TOLERANCES if adapter else TOLERANCES
    if qtype not in table:
        raise ValueError(f"no verification tolerance for {qtype!r} (known: {', '.join(table)})")
    base = table[qtype]
    return Tolerance(base.max_abs * max(1.0, float(np.std(reference_logits))), base.rel_rms)
