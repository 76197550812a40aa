"""The fast path's data writer on tensors larger than one piece of work, against numpy's own answer.

The byte-for-byte comparisons with llama.cpp's converter (test_gguf_fast.py) use tiny models, whose
tensors all fit in one piece: here tensors to cast are cut in several pieces, run by several workers
beside kernel copies and regrouped rows, and the file is compared with what a plain numpy pass makes.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tuneforge.exporter.gguf_fast_cast import bf16_to_f16_reference
from tuneforge.exporter.gguf_fast_data import (
    ALIGNMENT,
    PIECE_ELEMENTS,
    buffers_for,
    layout,
    permute_rows,
    pieces,
    write_data,
)
from tuneforge.exporter.gguf_tensors import PlannedTensor, SourceTensor

HEADER = b"GGUF-header-of-an-odd-length"


def source_file(path: Path, arrays: dict[str, np.ndarray], dtypes: dict[str, str]) -> dict[str, SourceTensor]:
    """Raw arrays one after another (as in a safetensors shard, after a header of 8 bytes)."""
    found, at = {}, 8
    with path.open("wb") as handle:
        handle.write(b"\0" * at)
        for name, array in arrays.items():
            raw = array.tobytes()
            handle.write(raw)
            found[name] = SourceTensor(name, dtypes[name], array.shape, path, at, len(raw))
            at += len(raw)
    return found


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[PlannedTensor], list[bytes]]:
    """A plan with every kind of work, each tensor over several pieces, and each tensor's expected bytes."""
    rng = np.random.default_rng(7)
    f16 = rng.standard_normal(PIECE_ELEMENTS * 2 + 1000, dtype=np.float32).astype(np.float16)
    bf16 = (rng.standard_normal(PIECE_ELEMENTS * 2 + 333, dtype=np.float32).view(np.uint32) >> 16).astype(
        np.uint16
    )
    f32 = rng.standard_normal(PIECE_ELEMENTS + 17, dtype=np.float32)
    heads, rows, cols = 4, 64, 96
    q_bf16 = (rng.standard_normal((rows, cols), dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    q_f16 = rng.standard_normal((rows, cols), dtype=np.float32).astype(np.float16)
    sources = source_file(
        tmp_path_factory.mktemp("gguf-data") / "model.safetensors",
        {"copy": f16, "cast": bf16, "narrow": f32, "q-cast": q_bf16, "q-copy": q_f16},
        {"copy": "F16", "cast": "BF16", "narrow": "F32", "q-cast": "BF16", "q-copy": "F16"},
    )
    with np.errstate(over="ignore"):
        expected = [
            f16.tobytes(),
            bf16_to_f16_reference(bf16).tobytes(),
            f32.astype(np.float16).tobytes(),
            permute_rows(bf16_to_f16_reference(q_bf16.reshape(-1)).view(np.uint8), (rows, cols), 2, heads),
            permute_rows(q_f16.view(np.uint8).reshape(-1), (rows, cols), 2, heads),
        ]
    plan = [
        PlannedTensor("copy", sources["copy"], "F16", None),
        PlannedTensor("cast", sources["cast"], "F16", None),
        PlannedTensor("narrow", sources["narrow"], "F16", None),
        PlannedTensor("q-cast", sources["q-cast"], "F16", heads),
        PlannedTensor("q-copy", sources["q-copy"], "F16", heads),
    ]
    return plan, [bytes(e) for e in expected]


def test_casts_are_cut_into_several_pieces_and_copies_are_one(
    planned: tuple[list[PlannedTensor], list[bytes]],
) -> None:
    plan, _ = planned
    offsets, _ = layout(plan, 0)
    counted = {tensor.name: 0 for tensor in plan}
    for piece in pieces(plan, offsets):
        counted[piece.tensor.name] += 1
    assert counted == {"copy": 1, "cast": 3, "narrow": 2, "q-cast": 1, "q-copy": 1}


@pytest.mark.parametrize("workers", [1, 3])
def test_the_file_holds_every_tensor_at_its_aligned_place(
    planned: tuple[list[PlannedTensor], list[bytes]], tmp_path: Path, workers: int
) -> None:
    plan, expected = planned
    out = tmp_path / "model.gguf"
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, HEADER)
        start = -(-len(HEADER) // ALIGNMENT) * ALIGNMENT
        # shared_cast_bytes=0: the workers share the casts, small as they are here.
        size = write_data(plan, fd, start, workers=workers, shared_cast_bytes=0)
    finally:
        os.close(fd)
    written = out.read_bytes()
    assert len(written) == size
    assert written[: len(HEADER)] == HEADER
    offsets, end = layout(plan, start)
    assert size == end
    for tensor, offset, want in zip(plan, offsets, expected, strict=True):
        assert written[offset : offset + len(want)] == want, tensor.name
    ends = [offset + len(want) for offset, want in zip(offsets, expected, strict=True)]
    gaps = [(len(HEADER), start), *zip(ends, [*offsets[1:], end], strict=True)]
    assert all(set(written[a:b]) <= {0} for a, b in gaps)


def test_an_output_the_disk_has_no_room_for_is_refused_before_a_source_is_opened(tmp_path: Path) -> None:
    """The output's blocks are allocated before anything is copied (tmpfs, /dev/shm, allocates for real):
    a petabyte tensor fails with ENOSPC, its missing source never read, the file as it was."""
    huge = SourceTensor("huge", "F16", (1 << 49,), tmp_path / "missing.safetensors", 8, 1 << 50)
    fd, name = tempfile.mkstemp(dir="/dev/shm")
    try:
        os.write(fd, HEADER)
        with pytest.raises(OSError, match="no room on the disk") as raised:
            write_data([PlannedTensor("huge", huge, "F16", None)], fd, ALIGNMENT, workers=1)
        assert raised.value.errno == errno.ENOSPC
        assert os.fstat(fd).st_size == len(HEADER)
    finally:
        os.close(fd)
        os.unlink(name)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_plan_with_nothing_to_cast_is_written_whole(
    planned: tuple[list[PlannedTensor], list[bytes]], tmp_path: Path, workers: int
) -> None:
    """Kernel copies and regrouped rows only (an f16 checkpoint): written in file order, in this thread."""
    plan, expected = planned
    kept = [index for index, tensor in enumerate(plan) if tensor.name in ("copy", "q-copy")]
    plan, expected = [plan[i] for i in kept], [expected[i] for i in kept]
    out = tmp_path / "model.gguf"
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = write_data(plan, fd, ALIGNMENT, workers=workers)
    finally:
        os.close(fd)
    written = out.read_bytes()
    offsets, end = layout(plan, ALIGNMENT)
    assert len(written) == size == end
    for tensor, offset, want in zip(plan, offsets, expected, strict=True):
        assert written[offset : offset + len(want)] == want, tensor.name


def test_the_buffers_are_what_the_plan_needs(planned: tuple[list[PlannedTensor], list[bytes]]) -> None:
    plan, _ = planned
    everything = buffers_for(plan)
    assert everything.src.size == everything.out.size == PIECE_ELEMENTS * 4
    assert everything.whole_out.size == 64 * 96 * 2
    copies_only = buffers_for([t for t in plan if t.name in ("copy", "q-copy")])
    assert copies_only.src.size == copies_only.out.size == copies_only.whole_out.size == 0
    norm = plan[0].source
    small = PlannedTensor("norm", SourceTensor("norm", "F16", (10,), norm.path, 8, 20), "F32", None)
    norms_only = buffers_for([t for t in plan if t.name == "copy"] + [small])
    assert norms_only.src.size == norms_only.out.size == 10 * 4


def test_a_shard_shorter_than_its_header_says_is_an_error_before_anything_is_mapped(tmp_path: Path) -> None:
    rows = np.zeros((8, 4), np.float16)
    source = source_file(tmp_path / "short.safetensors", {"q": rows}, {"q": "F16"})["q"]
    with (tmp_path / "short.safetensors").open("r+b") as handle:
        handle.truncate(source.offset + source.nbytes - 1)
    fd = os.open(tmp_path / "model.gguf", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError, match=r"short\.safetensors ends at byte 71, before its header says"):
            write_data([PlannedTensor("q", source, "F16", 2)], fd, 0, workers=1)
    finally:
        os.close(fd)
