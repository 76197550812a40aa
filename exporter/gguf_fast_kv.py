"""A GGUF file's key-value metadata, read in one pass.

gguf-py's ``GGUFReader`` makes two numpy arrays per string, so a 32000-token
vocabulary takes it about 2 s to read, three times a plain copy of a 1 GB
model here; this reads the same fields in tens of milliseconds: strings
one ``struct`` call each, numeric arrays with one ``np.frombuffer``. An
array the caller only passes on (a vocabulary's tokens, scores, merges) can
be kept as its bytes (``RawArray``): its strings are then only stepped over,
not decoded, and a writer puts the bytes back as they were.

Format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), little
endian: magic "GGUF", version u32 (3), tensor count u64, key-value count u64,
then per pair: key (u64 length + UTF-8), value type u32, value. A string is
u64 length + UTF-8; an array is item type u32, count u64, items.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

MAGIC: Final = 0x46554747
VERSION: Final = 3
STRING: Final = 8
ARRAY: Final = 9
_SCALARS: Final = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_ITEMS: Final = {code: np.dtype(fmt) for code, fmt in _SCALARS.items()}


class GgufFormatError(ValueError):
    """Not a GGUF file this reader understands; the message says where."""


@dataclass(frozen=True)
class RawArray:
    """An array value as the file holds it: ``packed`` is its value type, item type, count and items."""

    count: int
    packed: bytes


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: Any
    """A Python value: int, float, bool, str, or a list of one of them; or a RawArray."""
    type: int
    """GGUFValueType."""
    item_type: int | None = None
    """The items' GGUFValueType for an ARRAY."""


@dataclass(frozen=True)
class Metadata:
    tensor_count: int
    fields: list[KeyValue]


def read_metadata(path: Path, *, keep_raw: Callable[[str], bool] = lambda key: False) -> Metadata:
    """The header counts and every key-value pair of ``path``, in file order.

    An array whose key ``keep_raw`` accepts is read as a ``RawArray``, not decoded.
    """
    data = path.read_bytes()
    try:
        magic, version, tensors, count = struct.unpack_from("<IIQQ", data, 0)
    except struct.error:
        raise GgufFormatError(f"{path} is too short for a GGUF header") from None
    if magic != MAGIC or version != VERSION:
        raise GgufFormatError(f"{path} is not a GGUF v{VERSION} file (magic {magic:#x}, version {version})")
    reader = _Reader(data, 24, path)
    fields = []
    for _ in range(count):
        key = reader.string()
        value_type = reader.unpack("<I")
        if value_type == ARRAY:
            start = reader.at - 4
            item_type, items = reader.unpack("<I"), reader.unpack("<Q")
            if keep_raw(key):
                reader.skip_array(item_type, items, key)
                value: Any = RawArray(items, data[start : reader.at])
            else:
                value = reader.array(item_type, items, key)
            fields.append(KeyValue(key, value, ARRAY, item_type))
        else:
            fields.append(KeyValue(key, reader.value(value_type, key), value_type))
    return Metadata(tensors, fields)


class _Reader:
    def __init__(self, data: bytes, at: int, path: Path) -> None:
        self.data, self.at, self.path = data, at, path

    def unpack(self, fmt: str) -> Any:
        try:
            (value,) = struct.unpack_from(fmt, self.data, self.at)
        except struct.error:
            raise GgufFormatError(f"{self.path} ends inside its metadata (byte {self.at})") from None
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.unpack("<Q")
        raw = self.data[self.at : self.at + size]
        if len(raw) != size:
            raise GgufFormatError(f"{self.path} ends inside a string (byte {self.at})")
        self.at += size
        return raw.decode("utf-8")

    def value(self, value_type: int, key: str) -> Any:
        if value_type == STRING:
            return self.string()
        if value_type not in _SCALARS:
            raise GgufFormatError(f"{self.path}: {key} has value type {value_type}")
        return self.unpack(_SCALARS[value_type])

    def skip_array(self, item_type: int, count: int, key: str) -> None:
        """Moves past an array's items without decoding them."""
        if item_type == STRING:
            length, at, end = struct.Struct("<Q").unpack_from, self.at, len(self.data)
            try:
                for _ in range(count):
                    at += 8 + length(self.data, at)[0]
            except struct.error:
                raise GgufFormatError(f"{self.path} ends inside {key}") from None
            if at > end:
                raise GgufFormatError(f"{self.path} ends inside {key}")
            self.at = at
            return
        self.at += count * self._fixed_items(item_type, count, key).itemsize

    def _fixed_items(self, item_type: int, count: int, key: str) -> np.dtype[Any]:
        """The dtype of an array of ``count`` numbers at the current place, checked to fit the file."""
        if item_type not in _ITEMS:
            raise GgufFormatError(f"{self.path}: {key} is an array of type {item_type}")
        if self.at + count * _ITEMS[item_type].itemsize > len(self.data):
            raise GgufFormatError(f"{self.path} ends inside {key}")
        return _ITEMS[item_type]

    def array(self, item_type: int, count: int, key: str) -> list[Any]:
        if item_type == STRING:
            return [self.string() for _ in range(count)]
        items = np.frombuffer(self.data, self._fixed_items(item_type, count, key), count, self.at)
        self.at += items.nbytes
        values: list[Any] = items.tolist()
        return values
