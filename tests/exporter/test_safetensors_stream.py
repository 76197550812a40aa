"""The streaming safetensors reader and writer agree with the safetensors library; their I/O helpers."""

from __future__ import annotations

import errno
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tuneforge.exporter.safetensors_stream import (
    NAMES,
    OutputTensor,
    SafetensorsFormatError,
    StreamingWriter,
    copy_range,
    read_header,
    read_tensor,
)
from tuneforge.exporter.write_behind import WriteBehind

TENSORS = {
    "a.f32": torch.randn(3, 5),
    "b.bf16": torch.randn(7, 2).to(torch.bfloat16),
    "c.f16": torch.randn(4).to(torch.float16),
    "d.i64": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    "e.bool": torch.tensor([True, False, True]),
    "f.empty": torch.empty(0, 4),
    "g.scalar": torch.tensor(2.5),
}


def test_reads_what_the_library_writes(tmp_path: Path) -> None:
    path = tmp_path / "lib.safetensors"
    save_file(TENSORS, path, metadata={"format": "pt"})
    header = read_header(path)
    assert header.metadata == {"format": "pt"}
    with path.open("rb") as handle:
        for info in header.tensors:
            assert torch.equal(read_tensor(handle, header, info), TENSORS[info.name]), info.name


def test_the_library_reads_what_it_streams(tmp_path: Path) -> None:
    path = tmp_path / "ours.safetensors"
    planned = [OutputTensor(name, NAMES[t.dtype], tuple(t.shape)) for name, t in TENSORS.items()]
    with StreamingWriter(path, planned, {"format": "pt"}) as writer:
        for name, tensor in TENSORS.items():
            writer.write(name, tensor)
    loaded = load_file(path)
    assert set(loaded) == set(TENSORS)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in TENSORS.items())
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert length % 8 == 0


def test_a_file_the_disk_has_no_room_for_fails_before_a_tensor_is_written() -> None:
    """The writer allocates the declared data's blocks first; tmpfs (/dev/shm) allocates for real."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        planned = [OutputTensor("small", "F32", (4,)), OutputTensor("huge", "F16", (1 << 49,))]
        with pytest.raises(OSError, match="no room on the disk") as raised:
            StreamingWriter(Path(folder) / "w.safetensors", planned, {})
        assert raised.value.errno == errno.ENOSPC


def test_the_writer_holds_to_what_was_declared(tmp_path: Path) -> None:
    planned = [OutputTensor("x", "F32", (2,)), OutputTensor("y", "F32", (2,))]
    with pytest.raises(ValueError, match=r"expected x F32\[2\], got x BF16\[2\]"):
        with StreamingWriter(tmp_path / "w.safetensors", planned, {}) as writer:
            writer.write("x", torch.zeros(2, dtype=torch.bfloat16))
    writer = StreamingWriter(tmp_path / "v.safetensors", planned, {})
    writer.write("x", torch.zeros(2))
    with pytest.raises(ValueError, match="closed before tensor 'y' was written"):
        writer.close()


def test_broken_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    save_file({"w": torch.zeros(100)}, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SafetensorsFormatError, match="truncated or padded"):
        read_header(path)
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 4)
    with pytest.raises(SafetensorsFormatError, match="too short"):
        read_header(tmp_path / "junk.safetensors")


def test_copy_range_appends_a_slice_of_another_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(bytes(range(256)) * 1000)
    with src.open("rb") as a, dst.open("wb") as b:
        b.write(b"head")
        b.flush()
        copy_range(a.fileno(), 1000, b.fileno(), 50_000)
        b.write(b"tail")
    assert dst.read_bytes() == b"head" + src.read_bytes()[1000:51_000] + b"tail"


def test_copy_range_past_the_end_of_its_source_is_a_format_error_and_writes_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(bytes(10_000))
    with src.open("rb") as a, dst.open("wb") as b:
        b.write(b"head")
        b.flush()
        with pytest.raises(SafetensorsFormatError, match="ends inside a tensor's data"):
            copy_range(a.fileno(), 5_000, b.fileno(), 5_001)
    assert dst.read_bytes() == b"head"


def test_write_behind_keeps_order_and_raises_a_failed_write() -> None:
    written: list[int] = []
    with WriteBehind() as behind:
        for number in range(5):
            behind.buffer(10)
            behind.submit(written.append, number, owns_buffer=True)
    assert written == [0, 1, 2, 3, 4]

    def full_disk(_: int) -> None:
        raise OSError(28, "No space left on device")

    behind = WriteBehind()
    behind.submit(full_disk, 1)
    with pytest.raises(OSError, match="No space left"):
        behind.finish()
