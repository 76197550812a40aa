"""How samples become batches: padding-free wherever that changes nothing but the speed.

A padded batch computes every sample at the length of its longest one; on
short instruction data at batch size 4 about a quarter of the work is
padding (26% on the bundled alpaca sample). A padding-free batch concatenates
its samples into one row with per-sample position ids, and transformers'
attention (sdpa and eager through its packed-sequence mask, FlashAttention 2
natively) keeps each sample to itself: the same samples in the same steps,
the same loss and gradients up to float rounding, without the pads' work
(``bench/train_throughput.py`` measures it).

It is chosen when it is safe:

- SFT on text with the huggingface provider (trl refuses it for vision;
  DPO builds its pairs its own way; unsloth patches the model);
- without packing (trl's packing, best-fit decreasing, is padding-free already);
- when no sample is longer than maxSeqLength: trl does not truncate
  padding-free batches (``max_length`` must be None), so with over-long
  samples the padded path, which truncates them, is kept;
- with more than one sample per batch (one sample has nothing to pad).
"""

from __future__ import annotations

import logging
from typing import Any

from tuneforge.api.finetunejob import FineTuneJobSpec, Modality, Provider, TrainerKind

log = logging.getLogger(__name__)


def padding_free_is_safe(spec: FineTuneJobSpec, *, truncated: int) -> bool:
    hp = spec.hyperparameters
    return (
        spec.trainer == TrainerKind.sft
        and spec.modality == Modality.text
        and spec.provider == Provider.huggingface
        and not hp.packing
        and truncated == 0
        and hp.batch_size > 1
    )


def batching_kwargs(spec: FineTuneJobSpec, *, truncated: int) -> dict[str, Any]:
    """trl SFTConfig arguments that choose the batching (none: trl's padded default)."""
    if not padding_free_is_safe(spec, truncated=truncated):
        log.info("batches: padded to their longest sample")
        return {}
    log.info("batches: padding-free (no sample exceeds maxSeqLength, so none needs truncating)")
    return {"padding_free": True, "max_length": None}
