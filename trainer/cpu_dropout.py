"""LoRA dropout for training on CPU: the same Bernoulli masks, drawn 3-8x faster than torch's.

torch draws a CPU dropout mask one element at a time from its Mersenne Twister
(``bernoulli_``): 5-7 ns per element here, which made peft's LoRA dropout 18%
of a CPU training step (bench/train_throughput.py, profiled with py-spy) —
every LoRA module masks its whole input. ``CpuDropout`` takes the mask from
numpy's SFC64 generator instead, which makes 64 random bits per draw, four
elements' worth: an element is dropped when its 16-bit uniform integer is
below ``round(p * 2**16)`` (so the drop probability is ``p`` rounded to a
multiple of 2**-16, within 7.7e-6 of it), kept ones are scaled by
``1 / (1 - p)``, as ``torch.nn.Dropout`` does. A ``p`` too close to 0 or 1
for that resolution goes to torch's dropout.

Each call seeds its generator from torch's (one int64 draw), so everything
torch's RNG state governs still holds: a run is reproducible from the spec's
seed, a checkpoint's saved RNG state resumes the same masks, and gradient
checkpointing, which restores torch's RNG state before it recomputes a layer,
draws the same mask again. On a GPU (where torch's Philox dropout is fast)
and in eval mode it is ``torch.nn.functional.dropout`` itself.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

_BITS: Final = 16
_SEED_BOUND: Final = 2**63 - 1
_RESOLVED: Final = 2**-_BITS
"""The smallest drop (or keep) probability the 16-bit masks tell apart from 0."""


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """0 where dropped (probability ``p``), ``1 / (1 - p)`` where kept; seeded from torch's RNG."""
    count = shape.numel()
    seed = int(torch.randint(0, _SEED_BOUND, (), dtype=torch.int64))
    bits = np.random.SFC64(seed).random_raw((count + 3) // 4).view(np.uint16)[:count]
    kept = np.greater_equal(bits, np.uint16(round(p * 2**_BITS)))
    mask = np.multiply(kept, np.float32(1.0 / (1.0 - p)), dtype=np.float32)
    return torch.from_numpy(mask).view(shape).to(dtype)


class CpuDropout(torch.nn.Module):
    """``torch.nn.Dropout(p)`` with ``keep_mask``'s masks for CPU tensors in training mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability {p} is not between 0 and 1")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or not _RESOLVED <= self.p <= 1 - _RESOLVED:
            return F.dropout(x, self.p, self.training)
        return x * keep_mask(x.shape, self.p, x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}, masks from numpy's SFC64 on CPU"


def install(model: Any) -> int:
    """Replaces the LoRA dropouts of a peft model whose weights are on the CPU; returns how many."""
    if any(param.device.type != "cpu" for param in model.parameters()):
        return 0
    replaced = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, dropout in dropouts.items():
            if isinstance(dropout, torch.nn.Dropout) and dropout.p > 0:
                dropouts[name] = CpuDropout(dropout.p)
                replaced += 1
    if replaced:
        log.info(
            "LoRA dropout on CPU: masks from numpy's SFC64 in %d modules (trainer/cpu_dropout.py)", replaced
        )
    return replaced
