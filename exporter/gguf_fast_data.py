"""The fast path's tensor data: safetensors bytes -> GGUF bytes, in parallel, in bounded memory.

Every tensor's place in the output is known once the header is written
(tensors follow each other, each padded to 32 bytes), so the work is cut into
independent pieces, each of which reads its bytes with ``preadv``, casts them
(``gguf_fast_cast``) and writes them with ``pwrite`` at their offset: a pool
of threads (numpy releases the GIL) keeps every core busy without ordering.
Bytes that need no cast (an f16 weight of an f16 checkpoint, an f32 norm of
an f32 one) are copied by the kernel (``copy_file_range``). No mmap: the
address space stays bounded (``memory_limit`` caps it) by the pieces in
flight, and a q/k projection, read as a whole with its rows scattered to
their per-head places (the largest piece: one attention matrix).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from tuneforge.exporter.gguf_fast_cast import (
    Scratch,
    bf16_to_f16,
    bf16_to_f32,
    f16_to_f32,
    f32_to_f16,
)
from tuneforge.exporter.gguf_tensors import OUT_ITEMSIZE, SOURCE_DTYPES, PlannedTensor

PIECE_ELEMENTS: Final = 1 << 20
"""Elements per piece of work (2-4 MB in, 2-4 MB out): big enough for few system calls, small enough
to stay in cache between read, cast and write."""

ALIGNMENT: Final = 32
"""GGUF's default data alignment (general.alignment is refused by the plan)."""

_NO_KERNEL_COPY: Final = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
_UNSIGNED: Final = {2: np.uint16, 4: np.uint32}
_IOV_MAX: Final = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024

Bytes = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Piece:
    """Elements [start, stop) of one tensor, written at ``dst`` (the tensor's own offset + start's)."""

    tensor: PlannedTensor
    start: int
    stop: int
    dst: int


def layout(plan: Sequence[PlannedTensor], data_start: int) -> tuple[list[int], int]:
    """Each tensor's offset in the file, and the file's size (GGUFWriter's padding rule)."""
    offsets, at = [], data_start
    for tensor in plan:
        offsets.append(at)
        at += -(-tensor.nbytes // ALIGNMENT) * ALIGNMENT
    return offsets, at


def pieces(plan: Sequence[PlannedTensor], offsets: Sequence[int]) -> Iterator[Piece]:
    """The work, in file order: a regrouped (q/k) tensor is one piece, the rest cut every PIECE_ELEMENTS."""
    for tensor, offset in zip(plan, offsets, strict=True):
        count = tensor.nbytes // OUT_ITEMSIZE[tensor.out_type]
        step = count if tensor.permute_heads else PIECE_ELEMENTS
        for start in range(0, count, step):
            stop = min(count, start + step)
            yield Piece(tensor, start, stop, offset + start * OUT_ITEMSIZE[tensor.out_type])


def write_data(plan: Sequence[PlannedTensor], out_fd: int, data_start: int, *, workers: int) -> int:
    """Writes every tensor of ``plan`` into ``out_fd`` from ``data_start``; returns the file's size."""
    offsets, size = layout(plan, data_start)
    with ExitStack() as stack:
        sources: dict[Path, int] = {}
        for tensor in plan:
            path = tensor.source.path
            if path not in sources:
                sources[path] = os.open(path, os.O_RDONLY)
                stack.callback(os.close, sources[path])
        worker = _Worker(sources, out_fd)
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gguf-data") as pool:
            for _ in pool.map(worker.run, pieces(plan, offsets)):
                pass
    # The padding between tensors and after the last reads as the zeros GGUFWriter writes. Set last:
    # writes that extend a file are faster here than writes into a hole of one made long up front.
    os.ftruncate(out_fd, size)
    return size


class _Worker:
    """Runs pieces; each thread keeps its own buffers."""

    def __init__(self, sources: dict[Path, int], out_fd: int) -> None:
        self.sources = sources
        self.out_fd = out_fd
        self.local = threading.local()

    def _buffers(self) -> tuple[Bytes, Bytes, Scratch]:
        local = self.local
        if not hasattr(local, "scratch"):
            local.src = np.empty(PIECE_ELEMENTS * 4, np.uint8)
            local.out = np.empty(PIECE_ELEMENTS * 4, np.uint8)
            local.scratch = Scratch()
        return local.src, local.out, local.scratch

    def _whole(self, src_bytes: int, out_bytes: int) -> tuple[Bytes, Bytes, Scratch]:
        """Buffers for a whole tensor, kept for the next: fresh pages cost a fault each (~25% here)."""
        local, scratch = self.local, self._buffers()[2]
        if getattr(local, "whole_src", np.empty(0, np.uint8)).size < src_bytes:
            local.whole_src = np.empty(src_bytes, np.uint8)
        if getattr(local, "whole_out", np.empty(0, np.uint8)).size < out_bytes:
            local.whole_out = np.empty(out_bytes, np.uint8)
        return local.whole_src[:src_bytes], local.whole_out[:out_bytes], scratch

    def run(self, piece: Piece) -> None:
        tensor, source = piece.tensor, piece.tensor.source
        src_size, out_size = SOURCE_DTYPES[source.dtype], OUT_ITEMSIZE[tensor.out_type]
        count = piece.stop - piece.start
        src_fd, at = self.sources[source.path], source.offset + piece.start * src_size
        if tensor.permute_heads is None and (source.dtype, tensor.out_type) in (
            ("F16", "F16"),
            ("F32", "F32"),
        ):
            copy_range(src_fd, self.out_fd, count * src_size, at, piece.dst)
            return
        if tensor.permute_heads is None:
            src_buf, out_buf, scratch = self._buffers()
            src, out = src_buf[: count * src_size], out_buf[: count * out_size]
            read_exact(src_fd, src, at, source.path)
        else:  # the whole tensor, its rows read straight into their regrouped places
            src, out, scratch = self._whole(count * src_size, count * out_size)
            out = src if source.dtype == tensor.out_type else out
            read_permuted(src_fd, src, at, source.shape, tensor.permute_heads, source.path)
        if out is not src:
            cast(source.dtype, tensor.out_type, src, out, scratch)
        write_all(self.out_fd, out, piece.dst)


def permuted_order(rows: int, heads: int) -> npt.NDArray[np.int64]:
    """Where each source row of a q/k projection goes: ``permute_rows``' reordering, as indices."""
    half = rows // heads // 2
    head, within = np.divmod(np.arange(rows), 2 * half)
    part, row = np.divmod(within, half)
    return np.asarray(head * 2 * half + row * 2 + part, dtype=np.int64)


def read_permuted(fd: int, buf: Bytes, offset: int, shape: tuple[int, ...], heads: int, path: Path) -> None:
    """Reads a tensor of ``shape`` into ``buf`` with its rows regrouped per head (``permute_rows``).

    One ``preadv`` per IOV_MAX rows scatters them to their places: no second pass over the bytes.
    """
    rows = shape[0]
    row_bytes = len(buf) // rows
    order = permuted_order(rows, heads)
    places = [buf[int(to) * row_bytes : (int(to) + 1) * row_bytes].data for to in order]
    for first in range(0, rows, _IOV_MAX):
        chunk = places[first : first + _IOV_MAX]
        at = offset + first * row_bytes
        got = os.preadv(fd, chunk, at)
        if got < len(chunk) * row_bytes:  # a short read: the rest row by row, as read_exact would
            for index, place in enumerate(chunk):
                done = min(max(got - index * row_bytes, 0), row_bytes)
                if done < row_bytes:
                    view = np.frombuffer(place, np.uint8)[done:]
                    read_exact(fd, view, at + index * row_bytes + done, path)


def permute_rows(raw: Bytes, shape: tuple[int, ...], itemsize: int, heads: int) -> Bytes:
    """LlamaModel.permute on raw values: per head, the rows of its two rotary halves interleaved."""
    values = raw.view(_UNSIGNED[itemsize]).reshape(shape)
    grouped = values.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2)
    return np.ascontiguousarray(grouped).reshape(-1).view(np.uint8)


def cast(src_dtype: str, out_type: str, src: Bytes, out: Bytes, scratch: Scratch) -> None:
    """``src`` (safetensors ``src_dtype``) as ``out_type`` (F16/F32) into ``out``, as the converter casts."""
    if src_dtype == out_type:
        out[:] = src
    elif (src_dtype, out_type) == ("BF16", "F16"):
        bf16_to_f16(src.view(np.uint16), out.view(np.uint16), scratch)
    elif (src_dtype, out_type) == ("F32", "F16"):
        f32_to_f16(src.view(np.uint32), out.view(np.uint16))
    elif (src_dtype, out_type) == ("BF16", "F32"):
        bf16_to_f32(src.view(np.uint16), out.view(np.uint32))
    elif (src_dtype, out_type) == ("F16", "F32"):
        f16_to_f32(src.view(np.uint16), out.view(np.uint32))
    else:
        raise ValueError(f"no cast from {src_dtype} to {out_type}")


def read_exact(fd: int, buf: Bytes, offset: int, path: Path) -> None:
    done = 0
    while done < len(buf):
        got = os.preadv(fd, [buf[done:].data], offset + done)
        if got == 0:
            raise OSError(errno.EIO, f"{path} ends before its header says (at byte {offset + done})")
        done += got


def write_all(fd: int, buf: Bytes, offset: int) -> None:
    done = 0
    while done < len(buf):
        done += os.pwrite(fd, buf[done:].data, offset + done)


def copy_range(src_fd: int, out_fd: int, count: int, src_at: int, out_at: int) -> None:
    """``count`` bytes copied inside the kernel; with read/write where the file systems do not allow it."""
    done = 0
    try:
        while done < count:
            got = os.copy_file_range(src_fd, out_fd, count - done, src_at + done, out_at + done)
            if got == 0:
                raise OSError(errno.EIO, f"the source ends before byte {src_at + count}")
            done += got
        return
    except OSError as err:
        if err.errno not in _NO_KERNEL_COPY:
            raise
    buf = np.empty(min(count - done, PIECE_ELEMENTS * 4), np.uint8)
    while done < count:
        part = buf[: count - done]
        read_exact(src_fd, part, src_at + done, Path(f"/proc/self/fd/{src_fd}"))
        write_all(out_fd, part, out_at + done)
        done += len(part)
