"""The trainer as one of several processes (under ``tuneforge launch``).

Every worker runs the whole trainer: it validates the same data, builds the
same rows and seeds the same LoRA initialisation, so the ranks agree on the
samples, their order and the number of steps; transformers' Trainer then wraps
the model in DDP (or FSDP) and gives each rank its share of every shuffled
batch. What leaves the process is rank 0's alone: the adapter upload, the run
record and the status patches. The other ranks log to the console and write
their termination message for the launcher.

The run record proves the ranks trained together: each rank counts the
samples and tokens it trained on, and (DDP) hashes its final trainable
weights; rank 0 gathers both (``status.json`` → ``distributed``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge import termination
from tuneforge.api.finetunejob import FineTuneJobSpec
from tuneforge.trainer.errors import UnsupportedHardware

log = logging.getLogger(__name__)

RANK_MESSAGES_ENV = "TUNEFORGE_RANK_MESSAGES_DIR"
"""Set by the launcher: the folder where each worker writes its termination message."""


def rank_message_name(rank: int) -> str:
    return f"rank-{rank}.json"


def _int(environ: MutableMapping[str, str] | dict[str, str], name: str, default: int) -> int:
    try:
        return int(environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Worker:
    """Which process this is, from the variables torchrun sets (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0
    nodes: int = 1

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str] | None = None) -> Worker:
        env = os.environ if environ is None else environ
        return cls(
            rank=_int(env, "RANK", 0),
            local_rank=_int(env, "LOCAL_RANK", 0),
            world_size=_int(env, "WORLD_SIZE", 1),
            local_world_size=_int(env, "LOCAL_WORLD_SIZE", 1),
            node_rank=_int(env, "GROUP_RANK", 0),
            nodes=_int(env, "GROUP_WORLD_SIZE", 1),
        )

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that uploads, records and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world_size} (node {self.node_rank} of {self.nodes})"


def route_termination_message(worker: Worker, environ: MutableMapping[str, str] | None = None) -> None:
    """Under the launcher, this worker's termination message goes to its own file in the launcher's folder."""
    env = os.environ if environ is None else environ
    folder = env.get(RANK_MESSAGES_ENV)
    if folder and worker.distributed:
        env[termination.ENV] = os.path.join(folder, rank_message_name(worker.rank))


def strategy_of(spec: FineTuneJobSpec) -> str:
    return spec.distributed.strategy if spec.distributed is not None else "ddp"


def training_kwargs(strategy: str, worker: Worker, *, cuda: bool) -> dict[str, Any]:
    """transformers' TrainingArguments for several processes (none for one)."""
    if not worker.distributed:
        return {}
    out: dict[str, Any] = {
        "ddp_backend": "nccl" if cuda else "gloo",
        # LoRA on all-linear (and full fine-tuning) uses every trainable parameter in each step;
        # the search for unused ones costs a pass over the autograd graph per step.
        "ddp_find_unused_parameters": False,
    }
    if strategy == "fsdp":
        if not cuda:
            raise UnsupportedHardware(
                "spec.distributed.strategy fsdp needs CUDA GPUs (transformers runs FSDP on accelerators "
                "only) and this machine has none; use strategy ddp"
            )
        out["fsdp"] = True
        out["fsdp_config"] = {
            # FSDP2, each decoder layer its own unit; frozen base weights and trainable
            # LoRA weights share those units, so keep the original parameters.
            "version": 2,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "state_dict_type": "FULL_STATE_DICT",
            "use_orig_params": True,
        }
    return out


class SampleTally:
    """Counts the samples and real (non-pad) tokens this rank trains on, batch by batch.

    It wraps the Trainer's ``training_step``, which sees exactly the
    micro-batches this rank computes (evaluation batches never pass there).
    """

    def __init__(self) -> None:
        self.samples = 0
        self.tokens = 0
        self.micro_batches = 0

    @classmethod
    def attach(cls, trainer: Any) -> SampleTally:
        tally = cls()
        step = trainer.training_step

        def counted(model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            tally.count(inputs)
            return step(model, inputs, *args, **kwargs)

        trainer.training_step = counted
        return tally

    def count(self, inputs: dict[str, Any]) -> None:
        samples, tokens = batch_size(inputs)
        self.samples += samples
        self.tokens += tokens
        self.micro_batches += 1


def batch_size(inputs: dict[str, Any]) -> tuple[int, int]:
    """(samples, real tokens) of one collated batch: padded, padding-free or packed."""
    ids = inputs.get("input_ids")
    if ids is None:  # preference batches: one sample per prompt
        first = next((v for k, v in inputs.items() if k.endswith("input_ids")), None)
        return (len(first), 0) if first is not None else (0, 0)
    mask = inputs.get("attention_mask")
    positions = inputs.get("position_ids")
    if mask is None and positions is not None:
        # Padding-free / packed: one row of concatenated samples, each starting at position 0.
        return int((positions == 0).sum()), int(ids.numel())
    tokens = int(mask.sum()) if mask is not None else int(ids.numel())
    return int(ids.shape[0]), tokens


def weights_digest(model: Any) -> str:
    """sha256 of the trainable parameters (names and values): equal on every DDP rank."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if param.requires_grad:
            digest.update(name.encode())
            # .float(): numpy has no bfloat16 (trl keeps QLoRA adapters in bf16); exact for bf16/fp16.
            digest.update(param.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _gather(value: Any) -> list[Any]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rank_report(trainer: Any, tally: SampleTally, worker: Worker, strategy: str) -> dict[str, Any]:
    """Every rank's counts (and, under DDP, weight digests), gathered; every rank must call it."""
    mine: dict[str, Any] = {
        "rank": worker.rank,
        "node": worker.node_rank,
        "samples": tally.samples,
        "tokens": tally.tokens,
        "microBatches": tally.micro_batches,
    }
    # Only several DDP ranks have weights to compare (FSDP ranks hold different shards by design).
    compared = worker.distributed and strategy != "fsdp"
    if compared:
        mine["weightsSha256"] = weights_digest(trainer.model)
    ranks = _gather(mine)
    report: dict[str, Any] = {
        "worldSize": worker.world_size,
        "nodes": worker.nodes,
        "processesPerNode": worker.local_world_size,
        "strategy": strategy if worker.distributed else "single",
        "ranks": ranks,
    }
    if compared:
        digests = {r["weightsSha256"] for r in ranks}
        report["weightsIdentical"] = len(digests) == 1
        if len(digests) != 1:
            log.error("the ranks ended with different weights: %s", ranks)
    if worker.distributed:
        import torch.distributed as dist

        report["backend"] = dist.get_backend() if dist.is_initialized() else None
    return report


def save_processing_class(processing_class: Any, model_dir: Path, dest: Path) -> None:
    """The tokenizer (or processor) beside weights the Trainer wrote itself (FSDP)."""
    from tuneforge.trainer.model import copy_sentencepiece_model

    processing_class.save_pretrained(dest)
    copy_sentencepiece_model(model_dir, dest)


def save_once(
    trainer: Any,
    worker: Worker,
    strategy: str,
    *,
    save_artifact: Callable[[], None],
    save_processing_class: Callable[[], None],
    dest: str,
) -> None:
    """Rank 0 writes the result; under FSDP every rank first takes part in gathering the full weights."""
    if strategy == "fsdp" and worker.distributed:
        trainer.save_model(dest)  # collective: gathers the shards, rank 0 writes
        if worker.is_main:
            save_processing_class()
    elif worker.is_main:
        save_artifact()
    barrier()
