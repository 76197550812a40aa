"""Fold a LoRA adapter into its base model tensor by tensor, with bounded memory.

peft's ``merge_and_unload`` loads the whole model; this reads one base
tensor at a time from the safetensors shards (plain reads, no mmap), applies
the adapter's update with the very operations peft uses — so the result is
bit-identical to peft's in every dtype — and streams it into an output shard
of the same name. Peak memory is about the largest tensor plus its update,
not the model.

Nothing half-done is left at ``out``: the model is written to a hidden
sibling folder that is renamed into place at the end.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.exporter.adapter_config import load_adapter_config
from tuneforge.exporter.adapter_weights import TensorSource, open_adapter_weights
from tuneforge.exporter.errors import ModelInvalid
from tuneforge.exporter.lora_plan import MergePlan, plan_merge
from tuneforge.exporter.merge_ops import Scratch, apply
from tuneforge.exporter.model_files import (
    WeightLayout,
    copy_side_files,
    find_weights,
    read_config,
    set_config_dtype,
    tied_weight_keys,
    write_index,
)
from tuneforge.exporter.safetensors_stream import (
    DTYPES,
    NAMES,
    Header,
    OutputTensor,
    SafetensorsFormatError,
    StreamingWriter,
    read_header,
    read_tensor,
)
from tuneforge.exporter.write_behind import WriteBehind

_DTYPE_ALIASES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "f16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


@dataclass(frozen=True)
class MergeResult:
    """What a merge wrote."""

    out: Path
    shards: tuple[str, ...]
    tensors: int
    lora_modules: int
    """Modules whose LoRA update was folded in."""
    replaced: int
    """Tensors replaced by the adapter's copy (modules_to_save, saved embeddings)."""
    bytes: int
    """Size of the merged weights."""
    dtype: str | None
    """The dtype every floating-point tensor was cast to before merging (None: kept as stored)."""
    side_files: tuple[str, ...]
    """Config, tokenizer and other files copied beside the weights."""
    seconds: float


def merge_adapter(
    base: Path, adapter: Path, out: Path, *, dtype: torch.dtype | str | None = None
) -> MergeResult:
    """Writes ``base`` with ``adapter`` folded in to the folder ``out`` (replacing it).

    ``dtype`` casts the base's floating-point tensors before merging, as
    loading it with ``from_pretrained(dtype=...)`` does (None keeps them as
    stored). Raises AdapterInvalid, ModelInvalid or NotSupportedYet before
    writing anything when the adapter cannot be merged into this base.
    """
    started = time.monotonic()
    target = _dtype(dtype)
    base, adapter, out = Path(base), Path(adapter), Path(out)
    config = load_adapter_config(adapter)
    layout = find_weights(base)
    headers = {name: _header(base / name) for name in layout.shards}
    base_shapes = {t.name: t.shape for h in headers.values() for t in h.tensors}
    _check_index(layout, headers)
    with open_adapter_weights(adapter) as source, _one_thread():
        plan = plan_merge(
            config,
            source.shapes(),
            base_shapes,
            tied_keys=tied_weight_keys(read_config(base), base_shapes),
        )
        staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            scratch = Scratch()
            total = sum(
                _merge_shard(base / name, headers[name], staging / name, plan, source, target, scratch)
                for name in layout.shards
            )
            write_index(staging, layout, total)
            side = copy_side_files(base, adapter, staging)
            if target is not None:
                set_config_dtype(staging, str(target).removeprefix("torch."))
            if out.exists():
                shutil.rmtree(out)
            staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return MergeResult(
        out=out,
        shards=layout.shards,
        tensors=len(base_shapes),
        lora_modules=plan.lora_modules,
        replaced=plan.replacements,
        bytes=total,
        dtype=None if target is None else str(target).removeprefix("torch."),
        side_files=tuple(side),
        seconds=time.monotonic() - started,
    )


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread while merging: the work is memory-bound, and two OpenMP threads sharing
    the cores with the write-behind thread (and anything else) wait on each other — measured 3-4x
    slower on 2 cores. The results are the same: no reduction is split across threads (K = r)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _dtype(value: torch.dtype | str | None) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    try:
        return _DTYPE_ALIASES[value.lower()]
    except KeyError:
        raise ValueError(f"dtype {value!r} is not one of {', '.join(sorted(_DTYPE_ALIASES))}") from None


def _header(path: Path) -> Header:
    try:
        return read_header(path)
    except SafetensorsFormatError as err:
        raise ModelInvalid(f"the base model's weights are broken: {err}") from None


def _check_index(layout: WeightLayout, headers: dict[str, Header]) -> None:
    if layout.index is None:
        return
    weight_map = layout.index["weight_map"]
    for shard, header in headers.items():
        for tensor in header.tensors:
            if weight_map.get(tensor.name) != shard:
                raise ModelInvalid(
                    f"tensor {tensor.name} is stored in {shard} but the shard index says "
                    f"{weight_map.get(tensor.name)}: the checkpoint is inconsistent"
                )
    stored = {t.name for h in headers.values() for t in h.tensors}
    missing = sorted(set(weight_map) - stored)
    if missing:
        raise ModelInvalid(
            f"the shard index lists {missing[0]}, which no shard holds: the checkpoint is incomplete"
        )


def _merge_shard(
    src: Path,
    header: Header,
    dest: Path,
    plan: MergePlan,
    source: TensorSource,
    target: torch.dtype | None,
    scratch: Scratch,
) -> int:
    planned = [OutputTensor(t.name, _out_dtype(t.dtype, target), t.shape) for t in header.tensors]
    with (
        src.open("rb") as handle,
        StreamingWriter(dest, planned, header.metadata) as writer,
        WriteBehind() as behind,  # closed (every write done) before the writer is
    ):
        for info, out in zip(header.tensors, planned, strict=True):
            ops = plan.ops.get(info.name, ())
            if not ops and out.dtype == info.dtype:
                # Untouched: the kernel copies the bytes (by offset, so reads here may go on meanwhile).
                behind.submit(writer.copy, info, handle, header)
                continue
            tensor = read_tensor(handle, header, info, into=behind.buffer(info.nbytes))
            if target is not None and tensor.is_floating_point():
                tensor = tensor.to(target)
            for op in ops:
                tensor = apply(tensor, op, source, scratch)
            behind.submit(writer.write, info.name, tensor, owns_buffer=True)
            del tensor
    return sum(t.nbytes for t in planned)


def _out_dtype(stored: str, target: torch.dtype | None) -> str:
    if target is None or not DTYPES[stored].is_floating_point:
        return stored
    return NAMES[target]
