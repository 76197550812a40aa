"""The fast path's tensor data: safetensors bytes -> GGUF bytes, in bounded memory.

Every tensor's place in the output is known once the header is written
(tensors follow each other, each padded to 32 bytes), so the work is cut into
independent pieces, each of which reads its bytes with ``preadv``, casts them
(``gguf_fast_cast``) and writes them with ``pwrite`` at their offset: a pool
of threads (numpy releases the GIL) casts on every core without ordering,
and they write one at a time (the kernel would serialise them anyway).
Bytes that need no cast (an f16 weight of an f16 checkpoint, an f32 norm of
an f32 one) are copied by the kernel through a pipe (``file_ranges.PipeCopy``:
``splice``, in writes that end on 64 KB boundaries of the output), and so
are a q/k projection's rows, handed to the pipe from their source places in
regrouped order (``PipeCopy.gather``: ``vmsplice`` of a mapping of the shard). A q/k projection to cast is
cast whole from a read-only mapping of its shard and its rows written to
their places with ``pwritev``. A plan with little to cast (an f16
checkpoint: its norms, f16 to f32) runs in the calling thread, in file
order. Memory stays bounded: each worker holds buffers for one piece in and
out and, if it must be cast, one q/k projection (``buffers_for``), made
before the first byte is written; the shards' mappings add address space,
not memory (gguf-py maps every shard whole for the converter too).

The output's blocks are allocated before the first byte is written
(``file_ranges.preallocate``): ext4 then no longer reserves and tracks each
4 KB block as the page cache takes it. The data of a 1.1B f16 checkpoint
(2.2 GB) took 0.47-0.49 s without, 0.33-0.35 s with (best of 12, against
0.44 s for a plain copy of the shards into one new file).

Why this shape, measured on a 2-core VM against a plain kernel copy of the
same 2.2 GB (0.53-0.55 s for the shards as whole files): the copy is bound
by memory bandwidth, and anything moving memory on the other core at the
same time slows it, so a second thread gains nothing where little is cast;
populating a mapping ahead (``MAP_POPULATE``, or touching its pages) while
the other thread writes made whole conversions 0.15 s slower at the median.
Every tensor copied to its GGUF place took 0.65 s with ``copy_file_range``
and 0.59 s through ``PipeCopy``. The q/k rows (200 MB, 0.065 s to copy
unregrouped in a noisy hour) took 0.083 s handed over by address, 0.107 s
with a ``splice`` per row, more again with ``pwritev`` from a mapping.
"""

from __future__ import annotations

import errno
import mmap
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from tuneforge.exporter.file_ranges import PipeCopy, preallocate, read_exact, write_all
from tuneforge.exporter.gguf_fast_cast import (
    Scratch,
    bf16_to_f16,
    bf16_to_f32,
    f16_to_f32,
    f32_to_f16,
)
from tuneforge.exporter.gguf_tensors import OUT_ITEMSIZE, SOURCE_DTYPES, PlannedTensor

SHARED_CAST_BYTES: Final = 64 << 20
"""Below this much output to cast (~0.03 s on one core), the work runs in the calling thread: a
second thread would save less than it costs (handing the write lock over, memory traffic beside
the copies; an f16 checkpoint's data phase was ~0.04 s slower in a pool than in one thread)."""
PIECE_ELEMENTS: Final = 1 << 20
"""Elements per piece of work to cast (2-4 MB in, 2-4 MB out): big enough for few system calls,
small enough to stay in cache between read, cast and write."""

ALIGNMENT: Final = 32
"""GGUF's default data alignment (general.alignment is refused by the plan)."""

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
    """The work, in file order: a tensor to cast is cut in equal parts; a regrouped (q/k) tensor and
    one the kernel copies are one piece each (writes are serialised anyway, and one call per tensor
    copied was 0.01-0.02 s faster over 2.2 GB than 16 MB calls)."""
    for tensor, offset in zip(plan, offsets, strict=True):
        count = tensor.nbytes // OUT_ITEMSIZE[tensor.out_type]
        step = count if tensor.permute_heads or _is_copy(tensor) else PIECE_ELEMENTS
        for start in range(0, count, step):
            stop = min(count, start + step)
            yield Piece(tensor, start, stop, offset + start * OUT_ITEMSIZE[tensor.out_type])


@dataclass
class Buffers:
    """One worker's memory: for a piece to cast (``src``, ``out``, ``scratch``) and for a whole
    regrouped tensor to cast (``whole_out``); each empty where the plan has no such work."""

    src: Bytes
    out: Bytes
    scratch: Scratch
    whole_out: Bytes


def buffers_for(plan: Sequence[PlannedTensor]) -> Buffers:
    """What one worker needs for ``plan``, allocated and touched now.

    Up front rather than on first use: a page touched for the first time costs a fault (on this VM
    ~8 us, 0.2 s per 100 MB in a fresh process), and memory that is all there from the start is
    the writer's whole working set, known before it writes a byte.
    """
    casts = [t for t in plan if t.permute_heads is None and not _is_copy(t)]
    regrouped = [t for t in plan if t.permute_heads is not None]
    # Four bytes an element: the widest type read or written. No more than the largest piece: an
    # f16 checkpoint casts only its norms (f16 -> f32), a few thousand elements each.
    piece = max((min(t.nbytes // OUT_ITEMSIZE[t.out_type], PIECE_ELEMENTS) * 4 for t in casts), default=0)
    whole_out = max((t.nbytes for t in regrouped if t.source.dtype != t.out_type), default=0)
    scratch = Scratch() if any(t.source.dtype == "BF16" and t.out_type == "F16" for t in plan) else Scratch(0)
    return Buffers(_touched(piece), _touched(piece), scratch, _touched(whole_out))


def _touched(size: int) -> Bytes:
    buf = np.empty(size, np.uint8)
    buf.fill(0)
    return buf


def _is_copy(tensor: PlannedTensor) -> bool:
    """Whether the tensor's bytes go to the file as they are (the kernel copies them)."""
    return tensor.permute_heads is None and tensor.source.dtype == tensor.out_type


def _is_cast(tensor: PlannedTensor) -> bool:
    """Whether the tensor's elements are converted on the way (CPU work that threads can share)."""
    return tensor.source.dtype != tensor.out_type


def write_data(
    plan: Sequence[PlannedTensor],
    out_fd: int,
    data_start: int,
    *,
    workers: int,
    buffers: Sequence[Buffers] | None = None,
    shared_cast_bytes: int = SHARED_CAST_BYTES,
) -> int:
    """Writes every tensor of ``plan`` into ``out_fd`` from ``data_start``; returns the file's size.

    ``buffers``: one ``buffers_for(plan)`` per worker, if made ahead; made here otherwise.
    ``shared_cast_bytes``: the least output to cast for which the workers share the work.
    """
    offsets, size = layout(plan, data_start)
    preallocate(out_fd, data_start, size)
    shared = workers > 1 and sum(t.nbytes for t in plan if _is_cast(t)) >= shared_cast_bytes
    free: queue.SimpleQueue[Buffers] = queue.SimpleQueue()
    for made in (
        buffers if buffers is not None else [buffers_for(plan) for _ in range(workers if shared else 1)]
    ):
        free.put(made)
    with ExitStack() as stack:
        sources: dict[Path, int] = {}
        for tensor in plan:
            path = tensor.source.path
            if path not in sources:
                sources[path] = os.open(path, os.O_RDONLY)
                stack.callback(os.close, sources[path])
        _check_lengths(plan, sources)
        shards = {
            path: stack.enter_context(mapped_file(sources[path]))
            for path in {t.source.path for t in plan if t.permute_heads is not None and _is_cast(t)}
        }
        copies = stack.enter_context(PipeCopy())
        worker = _Worker(sources, shards, copies, out_fd, free)
        if shared:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gguf-data") as pool:
                for _ in pool.map(worker.run, pieces(plan, offsets)):
                    pass
        else:
            for piece in pieces(plan, offsets):
                worker.run(piece)
    # The padding between tensors and after the last reads as the zeros GGUFWriter writes: allocated
    # as zeros by ``preallocate``, or, where the file system cannot, set last (writes that extend a
    # file were faster here than writes into a hole of one made long up front).
    os.ftruncate(out_fd, size)
    return size


def _check_lengths(plan: Sequence[PlannedTensor], sources: dict[Path, int]) -> None:
    """Every tensor's bytes are in its file (a truncated shard is an error, not a SIGBUS in ``mapped``)."""
    lengths = {path: os.fstat(fd).st_size for path, fd in sources.items()}
    for tensor in plan:
        end = tensor.source.offset + tensor.source.nbytes
        if end > lengths[tensor.source.path]:
            raise OSError(
                errno.EIO,
                f"{tensor.source.path} ends at byte {lengths[tensor.source.path]}, before its header says"
                f" ({tensor.source.name} ends at byte {end})",
            )


class _Worker:
    """Runs pieces, each with a set of buffers taken from ``free`` and given back."""

    def __init__(
        self,
        sources: dict[Path, int],
        shards: dict[Path, mmap.mmap],
        copies: PipeCopy,
        out_fd: int,
        free: queue.SimpleQueue[Buffers],
    ) -> None:
        self.sources = sources
        self.shards = shards
        self.copies = copies  # used under ``writing``: one pipe, one copy at a time
        self.out_fd = out_fd
        self.free = free
        # One write into the output at a time. The kernel serialises buffered writes to a file anyway
        # (the inode's lock), but a thread waiting for it there spins: 12% of a bf16 conversion's CPU
        # and half an f16 one's system time on this 2-core VM, taken from the thread that casts.
        self.writing = threading.Lock()

    def run(self, piece: Piece) -> None:
        tensor, source = piece.tensor, piece.tensor.source
        src_size, out_size = SOURCE_DTYPES[source.dtype], OUT_ITEMSIZE[tensor.out_type]
        count = piece.stop - piece.start
        src_fd, at = self.sources[source.path], source.offset + piece.start * src_size
        if _is_copy(tensor):
            with self.writing:
                self.copies.copy(src_fd, self.out_fd, count * src_size, at, piece.dst)
            return
        if tensor.permute_heads is not None and not _is_cast(tensor):
            rows = source.shape[0]
            row_bytes = source.nbytes // rows
            starts = source.offset + source_rows(rows, tensor.permute_heads) * row_bytes
            with self.writing:
                self.copies.gather(src_fd, self.out_fd, starts, row_bytes, piece.dst)
            return
        buffers = self.free.get()
        try:
            if tensor.permute_heads is not None:
                self._regroup(tensor, tensor.permute_heads, piece.dst, buffers)
                return
            src, out = buffers.src[: count * src_size], buffers.out[: count * out_size]
            read_exact(src_fd, src, at, source.path)
            cast(source.dtype, tensor.out_type, src, out, buffers.scratch)
            with self.writing:
                write_all(self.out_fd, out, piece.dst)
        finally:
            self.free.put(buffers)

    def _regroup(self, tensor: PlannedTensor, heads: int, dst: int, buffers: Buffers) -> None:
        """A q/k projection to cast, whole: cast from the source's mapped pages into ``whole_out``,
        then its rows written from there to their regrouped places."""
        source = tensor.source
        with (
            memoryview(self.shards[source.path]) as shard,
            shard[source.offset : source.offset + source.nbytes] as raw,
        ):
            out = buffers.whole_out[: tensor.nbytes]
            cast(source.dtype, tensor.out_type, np.frombuffer(raw, np.uint8), out, buffers.scratch)
        with self.writing:
            write_regrouped(self.out_fd, out.data, source.shape[0], heads, dst)


@contextmanager
def mapped_file(fd: int) -> Iterator[mmap.mmap]:
    """The whole file ``fd``: the page cache's own pages, mapped read-only, faulted in when read.

    Every view of it must be gone when the block ends. The caller has checked that the file is as
    long as its header says (``_check_lengths``): a mapped page past the end of a file is a SIGBUS,
    not an error.
    """
    whole = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
    try:
        yield whole
    finally:
        whole.close()


def source_rows(rows: int, heads: int) -> npt.NDArray[np.int64]:
    """For each row of a regrouped q/k projection, the source row it holds (``permute_rows``)."""
    half = rows // heads // 2
    head, within = np.divmod(np.arange(rows, dtype=np.int64), 2 * half)
    row, part = np.divmod(within, 2)
    return np.asarray(head * 2 * half + part * half + row, dtype=np.int64)


def write_regrouped(fd: int, data: memoryview, rows: int, heads: int, offset: int) -> None:
    """Writes ``data`` (a tensor of ``rows`` rows) at ``offset`` with its rows regrouped per head.

    One ``pwritev`` per IOV_MAX rows gathers them from where they are: the kernel's copy is the
    only one (reading them into a buffer of ours first made the q/k projections 40% slower).
    """
    row_bytes = len(data) // rows
    places = [data[int(row) * row_bytes : (int(row) + 1) * row_bytes] for row in source_rows(rows, heads)]
    for first in range(0, rows, _IOV_MAX):
        chunk = places[first : first + _IOV_MAX]
        at = offset + first * row_bytes
        done = os.pwritev(fd, chunk, at)
        if done < len(chunk) * row_bytes:  # a short write: the rest row by row, as write_all would
            for index, place in enumerate(chunk):
                skip = min(max(done - index * row_bytes, 0), row_bytes)
                if skip < row_bytes:
                    write_all(fd, np.frombuffer(place, np.uint8)[skip:], at + index * row_bytes + skip)


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
