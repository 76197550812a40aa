"""Read and write safetensors files one tensor at a time, without mmap.

The safetensors library reads through mmap (every page touched stays in the
resident set until the file is closed) and writes only a whole dict of
tensors held in memory. A merge that must stay within the largest tensor
reads each tensor with plain ``readinto`` and writes the output file as it
goes: the header is known in advance (names, dtypes, shapes), so it is
written first and the tensors follow in its order.

File format (https://github.com/huggingface/safetensors): 8 bytes little-
endian header length N, N bytes of JSON (``{name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {str: str}}``, padded with
spaces to a multiple of 8), then the tensor bytes, offsets relative to the
end of the header, contiguous and without gaps.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import torch

from tuneforge.exporter.file_ranges import PipeCopy, preallocate

# The header is JSON; anything bigger than this is not a safetensors file (the library's limit is 100 MB).
MAX_HEADER_BYTES: Final = 100_000_000
METADATA_KEY: Final = "__metadata__"

DTYPES: Final[dict[str, torch.dtype]] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U64": torch.uint64,
    "U32": torch.uint32,
    "U16": torch.uint16,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
NAMES: Final[dict[torch.dtype, str]] = {dtype: name for name, dtype in DTYPES.items()}


class SafetensorsFormatError(ValueError):
    """The file is not a valid safetensors file; the message says where and what."""


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a safetensors header."""

    name: str
    dtype: str
    """safetensors' name: F32, BF16, ..."""
    shape: tuple[int, ...]
    begin: int
    """Offset of the first byte, relative to the end of the header."""
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class Header:
    """A parsed safetensors header: tensors in file order, metadata, where the data starts."""

    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    data_start: int

    def by_name(self) -> dict[str, TensorInfo]:
        return {t.name: t for t in self.tensors}


def element_size(dtype: str) -> int:
    return torch.empty((), dtype=DTYPES[dtype]).element_size()


def read_header(path: Path) -> Header:
    """The header of the safetensors file at ``path``; SafetensorsFormatError when it is broken."""
    with Path(path).open("rb") as handle:
        raw_length = handle.read(8)
        if len(raw_length) != 8:
            raise SafetensorsFormatError(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", raw_length)
        if length > MAX_HEADER_BYTES:
            raise SafetensorsFormatError(f"{path}: header length {length} is not plausible")
        raw = handle.read(length)
        size = handle.seek(0, 2)
    if len(raw) != length:
        raise SafetensorsFormatError(f"{path}: the file ends inside its header")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafetensorsFormatError(f"{path}: the header is not JSON ({err})") from None
    if not isinstance(doc, dict):
        raise SafetensorsFormatError(f"{path}: the header is not a JSON object")
    metadata = doc.pop(METADATA_KEY, None) or {}
    tensors = sorted((_entry(path, name, value) for name, value in doc.items()), key=lambda t: t.begin)
    data_start = 8 + length
    _check_layout(path, tensors, size - data_start)
    return Header(tuple(tensors), {str(k): str(v) for k, v in metadata.items()}, data_start)


def _entry(path: Path, name: str, value: Any) -> TensorInfo:
    try:
        dtype, shape, (begin, end) = (
            value["dtype"],
            tuple(int(d) for d in value["shape"]),
            value["data_offsets"],
        )
    except (KeyError, TypeError, ValueError):
        raise SafetensorsFormatError(f"{path}: tensor {name!r} has a malformed header entry") from None
    if dtype not in DTYPES:
        raise SafetensorsFormatError(f"{path}: tensor {name!r} has dtype {dtype!r}, which this reader lacks")
    info = TensorInfo(name, dtype, shape, int(begin), int(end))
    if info.nbytes != math.prod(shape) * element_size(dtype):
        raise SafetensorsFormatError(f"{path}: tensor {name!r}: its byte range does not match its shape")
    return info


def _check_layout(path: Path, tensors: Sequence[TensorInfo], data_bytes: int) -> None:
    position = 0
    for info in tensors:
        if info.begin != position:
            raise SafetensorsFormatError(f"{path}: tensor {info.name!r} does not start where the last ended")
        position = info.end
    if position != data_bytes:
        raise SafetensorsFormatError(
            f"{path}: the header describes {position} bytes of tensors, the file holds {data_bytes} "
            "(truncated or padded file)"
        )


def read_tensor(
    handle: BufferedReader, header: Header, info: TensorInfo, *, into: bytearray | None = None
) -> torch.Tensor:
    """The tensor ``info`` read from the open file ``handle`` into writable memory.

    Fresh memory, or the start of ``into`` (at least ``info.nbytes`` long): a
    buffer reused from tensor to tensor spares the page faults of a new
    allocation each time; the tensor is valid until the buffer is reused.
    """
    if info.nbytes == 0:
        return torch.empty(info.shape, dtype=info.torch_dtype)
    buffer = memoryview(into)[: info.nbytes] if into is not None else bytearray(info.nbytes)
    handle.seek(header.data_start + info.begin)
    if handle.readinto(buffer) != info.nbytes:
        raise SafetensorsFormatError(f"tensor {info.name!r}: the file ends inside its data")
    return torch.frombuffer(buffer, dtype=info.torch_dtype).reshape(info.shape)


def copy_range(src_fd: int, offset: int, dst_fd: int, count: int, copies: PipeCopy | None = None) -> None:
    """Appends ``count`` bytes of ``src_fd`` from ``offset`` to ``dst_fd`` (at its current position).

    Copied inside the kernel through a pipe (``file_ranges.PipeCopy``: an unchanged tensor lands at
    another offset than in its source, and the pipe's aligned writes keep that copy as fast as a
    whole file's); with reads and writes where a file system refuses. ``copies``: a pipe to reuse.
    """
    if os.fstat(src_fd).st_size < offset + count:
        raise SafetensorsFormatError("the source file ends inside a tensor's data")
    at = os.lseek(dst_fd, 0, os.SEEK_CUR)
    if copies is None:
        with PipeCopy() as own:
            own.copy(src_fd, dst_fd, count, offset, at)
    else:
        copies.copy(src_fd, dst_fd, count, offset, at)
    os.lseek(dst_fd, at + count, os.SEEK_SET)


@dataclass(frozen=True)
class OutputTensor:
    """What the writer is told in advance about one tensor."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * element_size(self.dtype)


def header_bytes(tensors: Sequence[OutputTensor], metadata: dict[str, str]) -> bytes:
    """The length prefix and JSON header for ``tensors`` laid out in the given order."""
    doc: dict[str, Any] = {METADATA_KEY: metadata} if metadata else {}
    offset = 0
    for tensor in tensors:
        doc[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    raw = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned, as the library writes it
    return struct.pack("<Q", len(raw)) + raw


class StreamingWriter:
    """Writes a safetensors file tensor by tensor, in the order declared up front.

    ``with StreamingWriter(path, planned, metadata) as out: out.write(name, tensor)``.
    Closing checks every declared tensor was written.
    """

    def __init__(self, path: Path, tensors: Sequence[OutputTensor], metadata: dict[str, str]) -> None:
        self.path = Path(path)
        self._planned = list(tensors)
        self._next = 0
        self._copies: PipeCopy | None = None  # made on the first copy
        header = header_bytes(self._planned, metadata)
        self._handle = self.path.open("wb")
        try:
            self._handle.write(header)
            # The data's blocks allocated up front (``file_ranges.preallocate``): the page cache fills
            # blocks ext4 has already allocated (a merge 6.2 -> 5.7 s), and a full disk fails here.
            data_bytes = sum(t.nbytes for t in self._planned)
            preallocate(self._handle.fileno(), len(header), len(header) + data_bytes)
        except BaseException:
            self._handle.close()
            raise

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self._expect(name, NAMES.get(tensor.dtype, str(tensor.dtype)), tuple(tensor.shape))
        if tensor.numel():
            # A byte view of contiguous memory: no copy for tensors that are already contiguous.
            self._handle.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data)
        self._next += 1

    def copy(self, info: TensorInfo, source: BufferedReader, header: Header) -> None:
        """Writes tensor ``info`` of ``source`` unchanged, copied by the kernel (no pass through memory)."""
        self._expect(info.name, info.dtype, info.shape)
        self._handle.flush()  # what the buffer holds goes first; the raw copy then appends at the file's end
        if self._copies is None:
            self._copies = PipeCopy()
        start = header.data_start + info.begin
        copy_range(source.fileno(), start, self._handle.fileno(), info.nbytes, self._copies)
        self._next += 1

    def _expect(self, name: str, dtype: str, shape: tuple[int, ...]) -> None:
        if self._next >= len(self._planned):
            raise ValueError(f"{self.path}: tensor {name!r} was not declared")
        planned = self._planned[self._next]
        if (planned.name, planned.dtype, planned.shape) != (name, dtype, shape):
            raise ValueError(
                f"{self.path}: expected {planned.name} {planned.dtype}{list(planned.shape)}, got {name} "
                f"{dtype}{list(shape)}"
            )

    def close(self) -> None:
        self._release()
        if self._next != len(self._planned):
            missing = self._planned[self._next].name
            raise ValueError(f"{self.path}: closed before tensor {missing!r} was written")

    def __enter__(self) -> StreamingWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._release()

    def _release(self) -> None:
        self._handle.close()
        if self._copies is not None:
            self._copies.close()
