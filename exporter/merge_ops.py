"""The arithmetic of a LoRA merge, with peft 0.21's float operations so the result is bit-identical.

peft's ``merge_and_unload`` (lora.Linear / lora.Embedding ``merge`` and
``get_delta_weight``): the adapter's fp16/bf16 weights are held in fp32
(``autocast_adapter_dtype``), the update is ``transpose(B @ A) * scaling``,
a linear layer adds it in the promoted dtype and rounds once, an embedding
casts it to the weight's dtype first. Rewriting an operation in place, or
into a reused buffer, keeps every value: only the memory traffic changes.
"""

from __future__ import annotations

import torch

from tuneforge.exporter.adapter_weights import TensorSource
from tuneforge.exporter.lora_plan import BiasUpdate, LoraUpdate, Op, Replacement


class Scratch:
    """Buffers reused from tensor to tensor: a fresh multi-MB allocation costs page faults every time."""

    def __init__(self) -> None:
        self._delta = torch.empty(0, dtype=torch.float32)
        self._wide = torch.empty(0, dtype=torch.float32)

    def wide(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        """A buffer to add in ``dtype`` (fp32) to a narrower weight."""
        numel = shape.numel()
        if self._wide.numel() < numel or self._wide.dtype != dtype:
            self._wide = torch.empty(0, dtype=dtype)
            self._wide = torch.empty(numel, dtype=dtype)
        return self._wide[:numel].view(shape)

    def delta(self, rows: int, cols: int) -> torch.Tensor:
        if self._delta.numel() < rows * cols:
            self._delta = torch.empty(0, dtype=torch.float32)
            self._delta = torch.empty(rows * cols, dtype=torch.float32)
        return self._delta[: rows * cols].view(rows, cols)


def apply(weight: torch.Tensor, op: Op, source: TensorSource, scratch: Scratch | None = None) -> torch.Tensor:
    """One step of the merge, with the operations (and dtypes) of peft 0.21's merge()."""
    if isinstance(op, Replacement):
        return source.get(op.source).to(weight.dtype)
    if isinstance(op, BiasUpdate):
        weight += _adapter_dtype(source.get(op.b_bias)) * op.scaling
        return weight
    delta = lora_delta(_adapter_dtype(source.get(op.a)), _adapter_dtype(source.get(op.b)), op, scratch)
    if op.kind == "embedding":
        weight += delta.to(weight.dtype)  # lora.Embedding.merge casts first
    elif weight.dtype == delta.dtype or scratch is None:
        weight += delta  # lora.Linear.merge adds in the promoted dtype, then rounds once
    else:
        # The same sum and the same single rounding as the mixed-dtype in-place add, 4x faster on CPU.
        wide = scratch.wide(weight.shape, delta.dtype)
        wide.copy_(weight)
        wide.add_(delta)
        weight.copy_(wide)
    return weight


def lora_delta(
    a: torch.Tensor, b: torch.Tensor, op: LoraUpdate, scratch: Scratch | None = None
) -> torch.Tensor:
    """``transpose(B @ A) * scaling``: lora.Linear / lora.Embedding get_delta_weight.

    The same float operations as peft's (so the same bits); written into a
    reused buffer when ``scratch`` is given, as in-place ops give the same
    values as out-of-place ones.
    """
    if scratch is not None and a.dtype == b.dtype == torch.float32:
        product = torch.matmul(b, a, out=scratch.delta(b.shape[0], a.shape[1]))
        product.mul_(op.scaling)
    else:
        product = (b @ a) * op.scaling
    return product.T if op.transpose else product


def _adapter_dtype(tensor: torch.Tensor) -> torch.Tensor:
    # PeftModel.from_pretrained(autocast_adapter_dtype=True) holds fp16/bf16 adapter weights in fp32.
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
