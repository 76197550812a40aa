"""Copies of file ranges through a pipe: every byte in its place, whatever the offsets, or an error."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tuneforge.exporter.file_ranges import OUTPUT_ALIGN, PipeCopy, copy_through_memory, preallocate

SIZE = 3 * (1 << 20) + 12_345


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data = np.random.default_rng(3).integers(0, 256, SIZE, dtype=np.uint8).tobytes()
    path = tmp_path_factory.mktemp("ranges") / "source.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def fds(source: tuple[Path, bytes], tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    src = os.open(source[0], os.O_RDONLY)
    out_path = tmp_path / "out.bin"
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    yield src, out, out_path
    os.close(src)
    os.close(out)


@pytest.mark.parametrize("pipe_bytes", [1 << 20, 1 << 16])
@pytest.mark.parametrize(
    ("src_at", "out_at", "count"),
    [(0, 0, SIZE), (8, 32, SIZE - 8), (4096, 100_003, 2 * (1 << 20) + 7), (12_345, OUTPUT_ALIGN - 32, 1)],
)
def test_a_range_lands_at_its_offset(
    source: tuple[Path, bytes],
    fds: tuple[int, int, Path],
    pipe_bytes: int,
    src_at: int,
    out_at: int,
    count: int,
) -> None:
    src, out, out_path = fds
    with PipeCopy(pipe_bytes) as copies:
        assert copies.splicing
        assert copies.pipe_bytes == pipe_bytes
        copies.copy(src, out, count, src_at, out_at)
    written = out_path.read_bytes()
    assert len(written) == out_at + count
    assert written[:out_at] == bytes(out_at)
    assert written[out_at:] == source[1][src_at : src_at + count]


def test_several_copies_through_one_pipe_leave_nothing_behind(
    source: tuple[Path, bytes], fds: tuple[int, int, Path]
) -> None:
    src, out, out_path = fds
    pieces = [(100, 5000), (70_000, 1_500_000), (3, 1)]
    with PipeCopy() as copies:
        at = 32
        for start, count in pieces:
            copies.copy(src, out, count, start, at)
            at += count
    expected = bytes(32) + b"".join(source[1][start : start + count] for start, count in pieces)
    assert out_path.read_bytes() == expected


@pytest.mark.parametrize("by_address", [True, False], ids=["vmsplice", "splice"])
@pytest.mark.parametrize("length", [100, 4096, 5000, 9000])
def test_gathered_ranges_follow_each_other(
    source: tuple[Path, bytes], fds: tuple[int, int, Path], length: int, by_address: bool
) -> None:
    src, out, out_path = fds
    rows = (SIZE - 8) // length
    # More ranges than one pipe holds, in an order that is not the file's.
    order = np.random.default_rng(length).permutation(rows)[:600]
    starts = [8 + int(row) * length for row in order]
    with PipeCopy(by_address=by_address) as copies:
        copies.gather(src, out, np.asarray(starts, dtype=np.int64), length, 40)
        assert copies.by_address == by_address  # the way asked for was the way taken
    expected = bytes(40) + b"".join(source[1][start : start + length] for start in starts)
    assert out_path.read_bytes() == expected


def test_a_source_the_kernel_will_not_map_is_gathered_with_splice(tmp_path: Path) -> None:
    """sysfs attributes can be spliced but not mapped (ENODEV): the gather goes on with a splice per
    range, and this PipeCopy no longer tries mapping."""
    attribute = Path("/sys/devices/system/cpu/online")  # in every Linux with sysfs, containers too
    data = attribute.read_bytes()
    src = os.open(attribute, os.O_RDONLY)
    path = tmp_path / "out.bin"
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    starts = [1, 0, 2]
    try:
        with PipeCopy() as copies:
            assert copies.by_address
            copies.gather(src, out, starts, 2, 0)
            assert not copies.by_address and copies.splicing
    finally:
        os.close(src)
        os.close(out)
    assert path.read_bytes() == b"".join(data[start : start + 2] for start in starts)


def test_a_pipe_larger_than_the_system_allows_is_as_large_as_it_allows(
    source: tuple[Path, bytes], fds: tuple[int, int, Path]
) -> None:
    """Unprivileged, a pipe grows to /proc/sys/fs/pipe-max-size (1 MB by default) and no further."""
    src, out, out_path = fds
    with PipeCopy(1 << 28) as copies:
        assert copies.splicing
        assert copies.pipe_bytes >= 1 << 16
        copies.copy(src, out, SIZE, 0, 0)
    assert out_path.read_bytes() == source[1]


@pytest.mark.parametrize("by_address", [True, False], ids=["vmsplice", "splice"])
def test_a_range_past_the_end_of_the_source_is_an_error(fds: tuple[int, int, Path], by_address: bool) -> None:
    src, out, _ = fds
    with PipeCopy(by_address=by_address) as copies, pytest.raises(OSError) as copying:
        copies.copy(src, out, 5000, SIZE - 100, 0)
    assert copying.value.errno == errno.EIO
    with PipeCopy(by_address=by_address) as copies, pytest.raises(OSError) as gathering:
        copies.gather(src, out, [0, SIZE - 10], 64, 0)
    assert gathering.value.errno == errno.EIO


def test_an_output_the_kernel_will_not_splice_into_gets_the_bytes_through_memory(
    source: tuple[Path, bytes], tmp_path: Path
) -> None:
    """Linux refuses ``splice`` into a file opened with O_APPEND (EINVAL): the copy goes on with reads
    and writes, and the pipe is not used again."""
    src = os.open(source[0], os.O_RDONLY)
    path = tmp_path / "appended.bin"
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        with PipeCopy() as copies:
            copies.copy(src, out, 70_000, 10, 0)
            assert not copies.splicing
            copies.gather(src, out, [5, 1000], 300, 70_000)
    finally:
        os.close(src)
        os.close(out)
    data = source[1]
    assert path.read_bytes() == data[10:70_010] + data[5:305] + data[1000:1300]


@pytest.mark.parametrize("by_address", [True, False], ids=["vmsplice", "splice"])
def test_gathered_ranges_the_output_will_not_take_from_a_pipe_go_through_memory(
    source: tuple[Path, bytes], tmp_path: Path, by_address: bool
) -> None:
    """The ranges reach the pipe (by address or spliced), the output refuses them (O_APPEND): they
    are written with reads and writes, none twice or lost."""
    src = os.open(source[0], os.O_RDONLY)
    path = tmp_path / "appended.bin"
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    starts = [5000, 3, 2_000_000]
    try:
        with PipeCopy(by_address=by_address) as copies:
            copies.gather(src, out, starts, 700, 0)
            assert not copies.splicing
    finally:
        os.close(src)
        os.close(out)
    assert path.read_bytes() == b"".join(source[1][start : start + 700] for start in starts)


def test_a_copy_through_memory_is_chunked_and_exact(
    source: tuple[Path, bytes], fds: tuple[int, int, Path]
) -> None:
    src, out, out_path = fds
    copy_through_memory(src, out, SIZE - 1, 1, 7)
    assert out_path.read_bytes() == bytes(7) + source[1][1:]


def test_a_preallocated_file_holds_its_blocks_reads_as_zeros_and_takes_copies(
    source: tuple[Path, bytes], fds: tuple[int, int, Path]
) -> None:
    """What was written before stays; the rest is allocated, zeros until a copy lands in it."""
    src, out, out_path = fds
    os.write(out, b"header")
    end = SIZE + 4096 + 100
    assert preallocate(out, 6, end)
    status = os.fstat(out)
    assert status.st_size == end
    assert status.st_blocks * 512 >= end  # allocated, not a hole
    assert out_path.read_bytes() == b"header" + bytes(end - 6)
    with PipeCopy() as copies:
        copies.copy(src, out, SIZE, 0, 100)
    assert out_path.read_bytes() == b"header" + bytes(94) + source[1] + bytes(4096)


def test_what_cannot_be_preallocated_is_left_as_it_is(tmp_path: Path) -> None:
    """A pipe (ESPIPE) and a character device (ENODEV): nothing allocated, no error; an empty range too."""
    read_end, write_end = os.pipe()
    null = os.open(os.devnull, os.O_WRONLY)
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    regular = os.open(path, os.O_WRONLY)
    try:
        assert not preallocate(write_end, 0, 1 << 20)
        assert not preallocate(null, 0, 1 << 20)
        assert not preallocate(regular, 10, 10)
        assert os.fstat(regular).st_size == 0
    finally:
        for fd in (read_end, write_end, null, regular):
            os.close(fd)


def test_a_disk_without_room_is_an_error_before_anything_is_written() -> None:
    """tmpfs (/dev/shm) allocates for real and has a size: a petabyte does not fit."""
    shm = Path("/dev/shm")
    assert shm.is_dir(), "these tests need Linux's /dev/shm (tmpfs)"
    fd, name = tempfile.mkstemp(dir=shm)
    try:
        with pytest.raises(OSError, match=f"no room on the disk for {1 << 50} bytes") as raised:
            preallocate(fd, 0, 1 << 50)
        assert raised.value.errno == errno.ENOSPC
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)
        os.unlink(name)
