"""The metadata reader of the fast path against files written by llama.cpp's own gguf-py."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tuneforge.exporter.gguf_fast_kv import ARRAY, GgufFormatError, RawArray, read_metadata

TOKENS = ["<unk>", "▁the", "", "ü", "\n", "tok" * 50]


def write(gguf: ModuleType, path: Path) -> None:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_string("general.name", "tiny")
    writer.add_array("general.tags", ["a", "b"])
    writer.add_array("tokenizer.ggml.tokens", TOKENS)
    writer.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0, 0.0, 1.5, -3.25])
    writer.add_uint32("llama.block_count", 2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def test_kept_arrays_are_the_files_own_bytes_and_the_rest_is_decoded(
    gguf: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "vocab.gguf"
    write(gguf, path)
    data = path.read_bytes()
    kept = read_metadata(path, keep_raw=lambda key: key.startswith("tokenizer."))
    decoded = {f.key: f.value for f in read_metadata(path).fields}
    values = {f.key: f.value for f in kept.fields}
    assert values["general.tags"] == ["a", "b"]
    assert values["llama.block_count"] == 2
    assert decoded["tokenizer.ggml.tokens"] == TOKENS
    for key, count in (("tokenizer.ggml.tokens", 6), ("tokenizer.ggml.scores", 6)):
        raw = values[key]
        assert isinstance(raw, RawArray)
        assert raw.count == count
        # The bytes from the value type to the array's end, exactly where the file holds them.
        assert data.count(raw.packed) == 1
        assert raw.packed[:4] == ARRAY.to_bytes(4, "little")
    ends = [data.index(v.packed) + len(v.packed) for v in values.values() if isinstance(v, RawArray)]
    assert data[ends[0] :].startswith(len("tokenizer.ggml.scores").to_bytes(8, "little"))


def test_a_kept_array_cut_short_is_a_format_error(gguf: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "vocab.gguf"
    write(gguf, path)
    data = path.read_bytes()
    cut = data.index(b"tok" * 50) + 10  # inside the last token of tokenizer.ggml.tokens
    path.write_bytes(data[:cut])
    with pytest.raises(GgufFormatError, match="ends inside tokenizer.ggml.tokens"):
        read_metadata(path, keep_raw=lambda key: True)
