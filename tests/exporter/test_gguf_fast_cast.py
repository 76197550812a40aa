"""The fast path's casts give the converter's bytes: every bf16 pattern, f32 edges, the q/k regrouping."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tuneforge.exporter.gguf_fast_cast import (
    Scratch,
    bf16_to_f16,
    bf16_to_f16_reference,
    bf16_to_f32,
    f16_to_f32,
    f32_to_f16,
)
from tuneforge.exporter.gguf_fast_data import cast, mapped_file, permute_rows, write_regrouped

EVERY_BF16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def converter_bf16_to_f16(bits: np.ndarray) -> np.ndarray:
    """convert_hf_to_gguf.py on a bf16 tensor: torch to f32, then numpy's astype(np.float16)."""
    as_f32 = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).to(torch.float32).numpy()
    with np.errstate(over="ignore"):
        return as_f32.astype(np.float16).view(np.uint16)


def test_the_reference_is_what_the_converter_does() -> None:
    assert np.array_equal(bf16_to_f16_reference(EVERY_BF16), converter_bf16_to_f16(EVERY_BF16))


@pytest.mark.parametrize("block", [1 << 16, 1000, 7])
def test_bf16_to_f16_equals_the_converter_on_every_bit_pattern(block: int) -> None:
    out = np.empty_like(EVERY_BF16)
    bf16_to_f16(EVERY_BF16, out, Scratch(block))
    expected = converter_bf16_to_f16(EVERY_BF16)
    differing = np.flatnonzero(out != expected)
    assert differing.size == 0, [f"{EVERY_BF16[i]:#06x}" for i in differing[:10]]
    # The interesting cases are all there: subnormal results, zeros, overflow to inf, inf and NaN.
    values = EVERY_BF16.astype(np.uint32) << 16
    as_float = values.view(np.float32)
    assert np.isnan(as_float).sum() == 2 * 127 and np.isinf(expected.view(np.float16)).sum() > 2
    assert ((np.abs(as_float) < 6.1e-5) & (as_float != 0)).sum() > 1000


def test_bf16_to_f32_is_torchs_exact_widening() -> None:
    out = np.empty(EVERY_BF16.size, np.uint32)
    bf16_to_f32(EVERY_BF16, out)
    widened = torch.from_numpy(EVERY_BF16.view(np.int16).copy()).view(torch.bfloat16).to(torch.float32)
    assert np.array_equal(out, widened.numpy().view(np.uint32))


def test_f32_and_f16_casts_are_numpys() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.standard_normal(100_000).astype(np.float32) * 0.02,
            np.array([0.0, -0.0, 65504.0, 65520.0, 1e9, -1e9, 5.96e-8, 2.98e-8, np.inf, -np.inf], np.float32),
            np.array([np.nan], np.float32),
        ]
    )
    halves = np.empty(values.size, np.uint16)
    f32_to_f16(values.view(np.uint32), halves)
    with np.errstate(over="ignore"):
        assert np.array_equal(halves, values.astype(np.float16).view(np.uint16))
    back = np.empty(values.size, np.uint32)
    f16_to_f32(halves, back)
    assert np.array_equal(back, halves.view(np.float16).astype(np.float32).view(np.uint32))


def test_cast_dispatches_on_the_dtype_pair() -> None:
    raw = np.array([1.5, -2.0], np.float32).view(np.uint8)
    out = np.empty(4, np.uint8)
    cast("F32", "F16", raw, out, Scratch())
    assert out.view(np.float16).tolist() == [1.5, -2.0]
    with pytest.raises(ValueError, match="no cast from F16 to BF16"):
        cast("F16", "BF16", raw, out, Scratch())


def test_q_and_k_rows_are_regrouped_per_head_like_the_converters_permute() -> None:
    # LlamaModel.permute: per head, rows [first half | second half] become interleaved pairs.
    rows, cols, heads = 8, 3, 2
    weights = np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols)
    regrouped = permute_rows(weights.reshape(-1).view(np.uint8), (rows, cols), 2, heads)
    order = regrouped.view(np.uint16).reshape(rows, cols)[:, 0] // cols
    assert order.tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    bias = np.arange(8, dtype=np.float32)
    assert permute_rows(bias.view(np.uint8), (8,), 4, 2).view(np.float32).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize(("shape", "heads"), [((2560, 6), 8), ((64, 3), 4), ((16,), 2)])
def test_rows_written_to_their_regrouped_places_equal_the_regrouping(
    tmp_path: Path, shape: tuple[int, ...], heads: int
) -> None:
    # 2560 rows: more than one pwritev (IOV_MAX is 1024); a 1-D bias: rows of one value.
    values = np.random.default_rng(3).integers(0, 1 << 16, size=shape, dtype=np.uint16)
    raw = values.reshape(-1).view(np.uint8)
    source, out = tmp_path / "tensor.bin", tmp_path / "out.bin"
    source.write_bytes(b"header" + raw.tobytes())
    fd, out_fd = os.open(source, os.O_RDONLY), os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with mapped_file(fd) as whole, memoryview(whole) as view, view[len(b"header") :] as rows:
            write_regrouped(out_fd, rows, shape[0], heads, len(b"out:"))
    finally:
        os.close(fd)
        os.close(out_fd)
    assert out.read_bytes() == b"\0" * len(b"out:") + permute_rows(raw, shape, 2, heads).tobytes()
