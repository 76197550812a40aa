"""A vectorised ``GGUFWriter._pack_val`` for gguf-py: the same bytes, arrays packed in one step.

gguf-py packs metadata one value at a time in Python: a 32000-token
vocabulary (tokens, scores, token types: 96000 values) takes the converter
~0.1 s of a 0.13 s ``--vocab-only`` run in a process started ahead, and the
fast path's header writer as long again. Here an array of numbers is packed
by one numpy conversion and an array of strings by one join, byte for byte
as gguf-py packs them (tests/exporter/test_gguf_pack.py compares both on
every value type).

Only the common case is taken over: a little-endian writer and an array
whose items are all strings (``str`` or ``bytes``), all ``int`` (or members
of one IntEnum, as the converter's token types are), all ``float`` or all
``bool``, as ``GGUFValueType.get_type`` reads them, with numbers that fit
their type. Anything else (and every scalar) goes to gguf-py's own
method, so its errors (mixed types, empty arrays, out of range values) are
its own.

``install(gguf)`` patches the class of the vendored module passed in (it is
not an installed package); ``gguf_converter_preload`` does that in a tool's spare.
"""

from __future__ import annotations

import enum
import struct
from typing import Any, Final

import numpy as np

_ARRAY: Final = 9
_STRING: Final = 8
_BOOL: Final = 7
_FLOAT32: Final = 6
_INT32: Final = 5
_INFERRED: Final = {str: _STRING, float: _FLOAT32, bool: _BOOL, int: _INT32}
"""GGUFValueType.get_type of an item of this kind (``_kind``: an IntEnum member counts as an int,
as it does there)."""
_NUMBERS: Final[dict[int, tuple[type, np.dtype[Any]]]] = {
    0: (int, np.dtype("<u1")),
    1: (int, np.dtype("<i1")),
    2: (int, np.dtype("<u2")),
    3: (int, np.dtype("<i2")),
    4: (int, np.dtype("<u4")),
    _INT32: (int, np.dtype("<i4")),
    _FLOAT32: (float, np.dtype("<f4")),
    10: (int, np.dtype("<u8")),
    11: (int, np.dtype("<i8")),
    12: (float, np.dtype("<f8")),
}
"""Numeric GGUFValueType -> the Python type its items must have here, and its packing."""
_HEAD: Final = struct.Struct("<IIQ")
_LENGTH: Final = struct.Struct("<Q")
_MARK: Final = "_tuneforge_fast_pack"


def install(gguf: Any) -> None:
    """Puts ``pack_array`` in front of ``gguf.GGUFWriter._pack_val`` (once; the original does the rest)."""
    writer = gguf.GGUFWriter
    original = writer._pack_val
    if getattr(original, _MARK, False):
        return
    little = gguf.GGUFEndian.LITTLE

    def _pack_val(self: Any, val: Any, vtype: Any, add_vtype: bool, sub_type: Any = None) -> bytes:
        if self.endianess == little:
            packed = pack_array(val, int(vtype), add_vtype, None if sub_type is None else int(sub_type))
            if packed is not None:
                return packed
        return original(self, val, vtype, add_vtype, sub_type)  # type: ignore[no-any-return]

    setattr(_pack_val, _MARK, True)
    writer._pack_val = _pack_val


def pack_array(val: Any, vtype: int, add_vtype: bool, sub_type: int | None) -> bytes | None:
    """gguf-py's little-endian bytes for an ARRAY ``val``; None when it is not the common case (pure)."""
    if vtype != _ARRAY or not isinstance(val, list) or not val:
        return None
    kinds = {_kind(item_class) for item_class in set(map(type, val))}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    item_type = _INFERRED.get(kind) if sub_type is None else sub_type
    body = _pack_items(val, kind, item_type)
    if body is None:
        return None
    head = _HEAD.pack(_ARRAY, item_type, len(val))
    return (head if add_vtype else head[4:]) + body


def _kind(item_type: type) -> type:
    """The type an item is packed as: its own, but int for an IntEnum member, str for bytes."""
    if item_type is bytes:
        return str
    if item_type is np.float64:
        return float
    return int if issubclass(item_type, enum.IntEnum) else item_type


def _pack_items(val: list[Any], kind: type, item_type: int | None) -> bytes | None:
    if item_type == _STRING and kind is str:
        parts = []
        for item in val:
            encoded = item.encode("utf-8") if isinstance(item, str) else item
            parts.append(_LENGTH.pack(len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    if item_type == _BOOL and kind is bool:
        return np.asarray(val, dtype=np.bool_).tobytes()
    number = _NUMBERS.get(item_type) if item_type is not None else None
    if number is None or number[0] is not kind:
        return None
    dtype = number[1]
    if kind is int:
        limits = np.iinfo(dtype)
        if min(val) < limits.min or max(val) > limits.max:
            return None  # struct refuses it: leave the error to gguf-py
        return np.asarray(val, dtype=dtype).tobytes()
    wide = np.asarray(val, dtype=np.float64)
    with np.errstate(over="ignore"):
        narrow = wide.astype(dtype)
    if np.any(np.isinf(narrow) & np.isfinite(wide)):
        return None  # struct refuses a finite double beyond float32's range
    return narrow.tobytes()
