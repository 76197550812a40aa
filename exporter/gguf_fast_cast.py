"""The dtype casts llama.cpp's converter makes, in bulk and bit for bit.

The converter turns every tensor that is neither f16 nor f32 into f32 with
torch (exact for bf16: its bits are the top half of an f32), then writes it
with numpy's ``astype(np.float16)`` (f16 GGUFs) or ``astype(np.float32)``
(1-D tensors and norms). These functions make the same bytes from the raw
safetensors bytes without torch:

- f32 -> f16, f16 -> f32: numpy's own cast, the converter's very function;
- bf16 -> f32: the bits shifted into the top half of a 32-bit word;
- bf16 -> f16: integer arithmetic on the 16-bit patterns, about 3x faster than
  going through f32. A bf16 whose exponent is in f16's normal range is exact
  in f16 (7 mantissa bits fit in 10): only the exponent is rebiased. The rest
  (f16 subnormals and zero, overflow, inf, NaN: a few per thousand in real
  weights) goes through the converter's path, bf16 -> f32 -> ``astype``.
  tests/exporter/test_gguf_fast_cast.py checks all 65536 bf16 patterns.

Arrays are 1-D views of raw bytes reinterpreted (``uint16`` for 16-bit types,
``uint32`` for f32), so no function here allocates more than its scratch.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]

BLOCK: Final = 1 << 18
"""Elements per step of the bf16 -> f16 kernel. Its scratch (1.25 MB) stays in a 2 MB L2 cache, and
each numpy call is long enough that two threads casting at once rarely wait for the GIL between
calls: measured with the writer's two threads on this 2-core VM, the cast took 1.96 s of thread time
per 2.2 GB at 1 << 16 elements (one thread alone: 0.9 s) and 1.33 s at 1 << 18."""

# bf16 and f16 bit patterns, sign bit cleared: [_NORMAL_LO, _NORMAL_HI) is the bf16 exponent
# range 113..142, i.e. 2^-14 <= |x| < 2^16, which f16 holds exactly as a normal number.
_SIGN: Final = 0x8000
_MAGNITUDE: Final = 0x7FFF
_NORMAL_LO: Final = 113 << 7
_NORMAL_HI: Final = 143 << 7
_REBIAS: Final = (127 - 15) << 7  # bf16 exponent bias 127, f16's 15, both before the << 3


class Scratch:
    """Working arrays of one thread for ``bf16_to_f16``."""

    def __init__(self, block: int = BLOCK) -> None:
        self.magnitude: U16 = np.empty(block, np.uint16)
        self.work: U16 = np.empty(block, np.uint16)
        self.rare: npt.NDArray[np.bool_] = np.empty(block, np.bool_)


def bf16_to_f32(src: U16, out: U32) -> None:
    """bf16 bit patterns -> f32 bit patterns (exact, as torch's ``.to(torch.float32)``)."""
    np.left_shift(src, 16, out=out, dtype=np.uint32)


def bf16_to_f16_reference(src: U16) -> U16:
    """What the converter does to a bf16 tensor in an f16 GGUF: via f32, then numpy's cast."""
    wide = np.left_shift(src, 16, dtype=np.uint32)
    with np.errstate(over="ignore"):  # bf16 reaches 3.4e38, f16 65504: inf, as in the converter
        return wide.view(np.float32).astype(np.float16).view(np.uint16)


def bf16_to_f16(src: U16, out: U16, scratch: Scratch) -> None:
    """bf16 bit patterns -> f16 bit patterns, as ``bf16_to_f16_reference``; ``out`` must not alias ``src``."""
    step = len(scratch.work)
    for start in range(0, len(src), step):
        x = src[start : start + step]
        n = len(x)
        o = out[start : start + n]
        magnitude, work, rare = scratch.magnitude[:n], scratch.work[:n], scratch.rare[:n]
        np.bitwise_and(x, _MAGNITUDE, out=magnitude)
        # Normal range: rebias the exponent, widen the mantissa; the sign bit is bit 15 in both.
        np.subtract(magnitude, _REBIAS, out=o)
        np.left_shift(o, 3, out=o)
        np.bitwise_and(x, _SIGN, out=work)
        np.bitwise_or(o, work, out=o)
        # Outside it (wrapping subtraction: one comparison finds both ends), the converter's own path.
        np.subtract(magnitude, _NORMAL_LO, out=work)
        np.greater_equal(work, _NORMAL_HI - _NORMAL_LO, out=rare)
        where = np.flatnonzero(rare)
        if where.size:
            o[where] = bf16_to_f16_reference(x[where])


def f32_to_f16(src: U32, out: U16) -> None:
    """f32 -> f16 with numpy's cast (the converter's ``astype(np.float16)``: round to nearest even)."""
    with np.errstate(over="ignore"):
        np.copyto(out.view(np.float16), src.view(np.float32), casting="same_kind")


def f16_to_f32(src: U16, out: U32) -> None:
    """f16 -> f32 (exact) with numpy's cast."""
    np.copyto(out.view(np.float32), src.view(np.float16), casting="safe")
