"""The fast path's GGUF header: llama.cpp's metadata and vocabulary, our tensor infos.

``convert_hf_to_gguf.py --vocab-only`` writes every key-value pair of the
full conversion (architecture parameters, tokenizer, chat template, file type)
and no tensors. One part of it depends on the tensors: the general.* naming
block (``gguf.Metadata`` + ``set_gguf_meta_model``) is derived with the
model's parameter count, which is 0 in a vocab-only run: no
``general.size_label``, and a name part such as "128k" is read as a size
label instead of a context length. So the block is made again here with the
real count, by the same gguf-py code the converter runs, and put where the
vocab-only block was (after checking that the vocab-only block is exactly
what that code gives with a count of 0). Everything else is copied as is,
key by key with its type, through gguf-py's ``GGUFWriter``, so the header
is byte for byte the converter's; the vocabulary's arrays (tokens, scores,
merges: most of the header) go through it as the bytes the converter wrote
(``RawArray``), not decoded and packed again: that took 20 ms of a 32000-token
vocabulary's 35 ms, and grows with the vocabulary.

``gguf`` below is the vendored gguf-py module (llama.cpp's, loaded by the
child process); it is passed in rather than imported because it is not an
installed package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuneforge.exporter.gguf_fast_kv import ARRAY, GgufFormatError, RawArray, read_metadata
from tuneforge.exporter.gguf_tensors import ModelShape, PlannedTensor, Unsupported


@dataclass(frozen=True)
class Field:
    """One metadata key-value pair with its GGUF types."""

    key: str
    value: Any
    type: Any
    """gguf.GGUFValueType"""
    sub_type: Any = None
    """The item type of an ARRAY."""


def _decoded(key: str) -> bool:
    """Whether a vocab-only field's value is read (the naming block is compared), not only passed on."""
    return key.startswith("general.")


def _length(array: RawArray | list[Any]) -> int:
    return array.count if isinstance(array, RawArray) else len(array)


def read_vocab(gguf: Any, path: Path) -> list[Field]:
    """The key-value pairs of the converter's vocab-only GGUF, in order, ``general.architecture`` first.

    Arrays outside general.* are RawArray values, which only ``open_gguf`` writes.
    """
    try:
        metadata = read_metadata(path, keep_raw=lambda key: not _decoded(key))
    except GgufFormatError as err:
        raise Unsupported(str(err)) from None
    if metadata.tensor_count:
        raise Unsupported(f"the vocab-only GGUF has {metadata.tensor_count} tensors")
    fields = []
    for field in metadata.fields:
        if field.type == ARRAY and not _length(field.value):
            raise Unsupported(f"metadata {field.key} is an empty array (GGUFWriter refuses those)")
        item_type = None if field.item_type is None else gguf.GGUFValueType(field.item_type)
        fields.append(Field(field.key, field.value, gguf.GGUFValueType(field.type), item_type))
    if not fields or fields[0].key != "general.architecture":
        raise Unsupported("the vocab-only GGUF does not start with general.architecture")
    return fields


def check_shape(fields: Sequence[Field], shape: ModelShape) -> None:
    """Unsupported unless the converter read the model as the plan did (architecture, layers, heads)."""
    values = {field.key: field.value for field in fields}
    arch = shape.rule.gguf_arch
    expected = {
        "general.architecture": arch,
        f"{arch}.block_count": shape.block_count,
        f"{arch}.attention.head_count": shape.head_count,
        f"{arch}.attention.head_count_kv": shape.head_count_kv,
    }
    for key, value in expected.items():
        if values.get(key) != value:
            raise Unsupported(f"the converter wrote {key}={values.get(key)!r}, the plan assumed {value!r}")
    if "general.alignment" in values:
        raise Unsupported("the converter set general.alignment")


def naming_block(gguf: Any, model_dir: Path, arch: str, counts: tuple[int, int, int, int]) -> list[Field]:
    """The general.* fields ``ModelBase.prepare_metadata`` writes for a model with these parameter counts."""
    total = counts[0]
    metadata = gguf.Metadata.load(None, model_dir, None, total)
    if metadata.name is None:
        metadata.name = model_dir.name
    if metadata.size_label is None and total > 0:
        metadata.size_label = gguf.size_label(*counts)
    scratch = gguf.GGUFWriter(None, arch)
    metadata.set_gguf_meta_model(scratch)
    return [
        Field(key, value.value, value.type, value.sub_type)
        for key, value in scratch.kv_data[0].items()
        if key != "general.architecture"
    ]


def with_naming_block(
    fields: Sequence[Field], vocab_only_block: Sequence[Field], block: Sequence[Field], float32: Any
) -> list[Field]:
    """``fields`` with the run equal to ``vocab_only_block`` replaced by ``block`` (pure).

    ``float32`` is gguf.GGUFValueType.FLOAT32 (its values are compared as f32, as stored).
    """
    width = len(vocab_only_block)
    for start in range(len(fields) - width + 1):
        run = fields[start : start + width]
        if all(_same(a, b, float32) for a, b in zip(run, vocab_only_block, strict=True)):
            return [*fields[:start], *block, *fields[start + width :]]
    raise Unsupported("the vocab-only GGUF's general.* fields are not gguf-py Metadata's")


def _same(a: Field, b: Field, float32: Any) -> bool:
    if (a.key, a.type, a.sub_type) != (b.key, b.type, b.sub_type):
        return False
    if float32 in (a.type, a.sub_type):
        return bool(np.array_equal(np.float32(a.value), np.float32(b.value)))
    return bool(a.value == b.value)


def open_gguf(
    gguf: Any, path: Path, model_dir: Path, vocab: Sequence[Field], plan: Sequence[PlannedTensor]
) -> Any:
    """A GGUFWriter on ``path`` with header, metadata, tensor infos and padding written; data comes next."""
    arch = vocab[0].value
    writer = _splicing_writer(gguf)(path, arch)
    for tensor in plan:
        dtype = np.float16 if tensor.out_type == "F16" else np.float32
        writer.add_tensor_info(tensor.name, tensor.source.shape, np.dtype(dtype), tensor.nbytes)
    counts = writer.get_total_parameter_count()
    fields = with_naming_block(
        vocab[1:],
        naming_block(gguf, model_dir, arch, (0, 0, 0, 0)),
        naming_block(gguf, model_dir, arch, counts),
        gguf.GGUFValueType.FLOAT32,
    )
    for field in fields:
        writer.add_key_value(field.key, field.value, field.type, sub_type=field.sub_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    out = writer.fout[0]
    writer.write_padding(out, out.tell())
    out.flush()
    return writer


def _splicing_writer(gguf: Any) -> Any:
    """gguf-py's GGUFWriter, writing a RawArray value as the bytes it was read as."""

    class SplicingWriter(gguf.GGUFWriter):  # type: ignore[misc]
        def _pack_val(self, val: Any, vtype: Any, add_vtype: bool, sub_type: Any = None) -> bytes:
            if isinstance(val, RawArray) and add_vtype:
                return val.packed
            packed: bytes = super()._pack_val(val, vtype, add_vtype, sub_type=sub_type)
            return packed

    return SplicingWriter
