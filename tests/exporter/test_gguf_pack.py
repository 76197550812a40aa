"""The vectorised metadata packer writes gguf-py's bytes, and leaves gguf-py's errors to gguf-py."""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tuneforge.exporter.gguf_pack import install, pack_array

STRING, ARRAY, FLOAT32 = 8, 9, 6


class TokenType(enum.IntEnum):
    """As the converter's SentencePieceTokenTypes."""

    NORMAL = 1
    CONTROL = 3


class Small(int):
    """An int subclass: gguf-py packs it as an int, ours leaves it to gguf-py."""


ARRAYS: list[tuple[str, list[Any], int | None]] = [
    ("tokens", ["<unk>", "<s>", "▁the", "é", "", "日本", "\n", "a" * 300], None),
    ("tokens as bytes", [b"<unk>", "▁the".encode(), b"\xff", b""], None),
    ("str and bytes", ["a", b"b"], None),
    ("scores", [0.0, -1.5, 1e-45, -0.0, 3.4028234e38, 1 / 3, math.inf, -math.inf], None),
    ("nan", [math.nan, -math.nan, 1.0], None),
    ("token types", [1, 2, 3, 6, -(1 << 31), (1 << 31) - 1], None),
    ("token type members", [TokenType.NORMAL, TokenType.CONTROL, TokenType.NORMAL], None),
    ("ints and members", [1, TokenType.CONTROL], None),
    ("numpy doubles", [np.float64(0.5), np.float64(-1e-3)], None),
    ("flags", [True, False, True], None),
    ("typed u32", [0, 1, (1 << 32) - 1], 4),
    ("typed u8", [0, 255], 0),
    ("typed i64", [-(1 << 63), (1 << 63) - 1], 11),
    ("typed u64", [0, (1 << 64) - 1], 10),
    ("typed f64", [0.1, -2.5e300], 12),
    ("typed strings", ["a", "b"], STRING),
]

DECLINED: list[tuple[str, Any, int | None]] = [
    ("mixed types", [1, 2.0], None),
    ("int beyond int32", [1 << 31], None),
    ("float beyond float32", [1e39], None),
    ("int beyond its sub type", [256], 0),
    ("ints as floats", [1, 2], FLOAT32),
    ("a tuple", ("a", "b"), None),
    ("an int subclass", [Small(1)], None),
    ("nested arrays", [[1], [2]], None),
    ("empty", [], None),
]


@pytest.fixture
def writers(gguf: ModuleType) -> Iterator[tuple[Any, Any]]:
    """A GGUFWriter with gguf-py's packer and one with ours (a subclass: the module's class is untouched)."""
    fast_class = type("FastWriter", (gguf.GGUFWriter,), {})
    install(types.SimpleNamespace(GGUFWriter=fast_class, GGUFEndian=gguf.GGUFEndian))
    yield gguf.GGUFWriter(None, "llama"), fast_class(None, "llama")


def pack(writer: Any, gguf: ModuleType, val: Any, sub_type: int | None, add_vtype: bool) -> bytes:
    sub = None if sub_type is None else gguf.GGUFValueType(sub_type)
    return bytes(writer._pack_val(val, gguf.GGUFValueType.ARRAY, add_vtype=add_vtype, sub_type=sub))


@pytest.mark.parametrize(("name", "val", "sub_type"), ARRAYS, ids=[case[0] for case in ARRAYS])
@pytest.mark.parametrize("add_vtype", [True, False])
def test_arrays_are_packed_as_gguf_py_packs_them(
    writers: tuple[Any, Any],
    gguf: ModuleType,
    name: str,
    val: list[Any],
    sub_type: int | None,
    add_vtype: bool,
) -> None:
    slow, fast = writers
    assert pack_array(val, ARRAY, add_vtype, sub_type) is not None  # ours did pack it
    assert pack(fast, gguf, val, sub_type, add_vtype) == pack(slow, gguf, val, sub_type, add_vtype)


@pytest.mark.parametrize(("name", "val", "sub_type"), DECLINED, ids=[case[0] for case in DECLINED])
def test_what_it_does_not_take_on_goes_to_gguf_py_with_its_errors(
    writers: tuple[Any, Any], gguf: ModuleType, name: str, val: Any, sub_type: int | None
) -> None:
    assert pack_array(val, ARRAY, True, sub_type) is None
    slow, fast = writers
    try:
        expected: bytes | str = pack(slow, gguf, val, sub_type, True)
    except Exception as err:  # noqa: BLE001 - the error itself is what is compared
        expected = f"{type(err).__name__}: {err}"
    try:
        got: bytes | str = pack(fast, gguf, val, sub_type, True)
    except Exception as err:  # noqa: BLE001
        got = f"{type(err).__name__}: {err}"
    assert got == expected


def test_scalars_and_a_whole_vocabulary_header_are_gguf_pys(
    writers: tuple[Any, Any], gguf: ModuleType
) -> None:
    slow, fast = writers
    tokens = [f"tok{i}" for i in range(5000)]
    for writer in (slow, fast):
        writer.add_string("general.name", "tiny")
        writer.add_uint32("llama.block_count", 2)
        writer.add_float32("llama.rope.freq_base", 10000.0)
        writer.add_bool("tokenizer.ggml.add_bos_token", True)
        writer.add_token_list(tokens)
        writer.add_token_scores([float(-i) for i in range(5000)])
        writer.add_token_types([1] * 5000)
    for key, value in slow.kv_data[0].items():
        args = (value.value, value.type)
        assert fast._pack_val(*args, add_vtype=True, sub_type=value.sub_type) == slow._pack_val(
            *args, add_vtype=True, sub_type=value.sub_type
        ), key


def test_installing_twice_wraps_once(gguf: ModuleType) -> None:
    fast_class = type("FastWriter", (gguf.GGUFWriter,), {})
    module = types.SimpleNamespace(GGUFWriter=fast_class, GGUFEndian=gguf.GGUFEndian)
    install(module)
    first = fast_class._pack_val
    install(module)
    assert fast_class._pack_val is first


def test_a_big_endian_writer_keeps_gguf_pys_packing(gguf: ModuleType) -> None:
    fast_class = type("FastWriter", (gguf.GGUFWriter,), {})
    install(types.SimpleNamespace(GGUFWriter=fast_class, GGUFEndian=gguf.GGUFEndian))
    big = gguf.GGUFEndian.BIG
    fast, slow = fast_class(None, "llama", endianess=big), gguf.GGUFWriter(None, "llama", endianess=big)
    assert pack(fast, gguf, [1, 2], None, True) == pack(slow, gguf, [1, 2], None, True)
    assert pack(fast, gguf, [1, 2], None, True)[:4] == ARRAY.to_bytes(4, "big")
