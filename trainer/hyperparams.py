"""Map spec.hyperparameters (and spec.evaluation) onto peft's LoraConfig and trl's SFTConfig.

Pure functions returning keyword arguments, so the mapping is testable
without building a trainer; the hardware facts come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuneforge.api.finetunejob import Evaluation, Hyperparameters, Precision
from tuneforge.trainer.errors import InvalidSpec, UnsupportedHardware

ALL_LINEAR = "all-linear"


def resolve_precision(requested: Precision, *, cuda: bool, bf16_supported: bool) -> str:
    """ "bf16", "fp16" or "fp32" for this machine; refuses what it cannot do."""
    if requested == Precision.auto:
        if cuda:
            return "bf16" if bf16_supported else "fp16"
        return "fp32"
    if requested == Precision.fp32:
        return "fp32"
    if not cuda:
        raise UnsupportedHardware(
            f"spec.hyperparameters.precision {requested.value} needs a CUDA GPU and this machine has none; "
            "use auto or fp32, or request a GPU with spec.resources.gpus"
        )
    if requested == Precision.bf16 and not bf16_supported:
        raise UnsupportedHardware(
            "spec.hyperparameters.precision bf16 is not supported by this GPU (it needs Ampere or newer); "
            "use auto or fp16"
        )
    return requested.value


def attn_implementation(flash_attention: bool, *, cuda: bool, flash_attn_installed: bool) -> str | None:
    """The attn_implementation to load the model with (None: the library's default)."""
    if not flash_attention:
        return None
    if not cuda:
        raise UnsupportedHardware(
            "spec.hyperparameters.flashAttention needs a CUDA GPU and this machine has none; "
            "set flashAttention to false"
        )
    if not flash_attn_installed:
        raise UnsupportedHardware(
            "spec.hyperparameters.flashAttention needs the flash-attn package, which this trainer image "
            "does not have; set flashAttention to false"
        )
    return "flash_attention_2"


def resolve_target_modules(requested: list[str], available: Iterable[str]) -> str | list[str]:
    """ "all-linear" or the requested names, each checked against the model's linear layers."""
    if ALL_LINEAR in requested:
        if len(requested) > 1:
            raise InvalidSpec(
                "spec.hyperparameters.targetModules: all-linear cannot be combined with module names"
            )
        return ALL_LINEAR
    names = sorted(set(available))
    unknown = [m for m in requested if m not in names]
    if unknown:
        raise InvalidSpec(
            f"spec.hyperparameters.targetModules: {', '.join(repr(m) for m in unknown)} "
            f"{'is not a linear module' if len(unknown) == 1 else 'are not linear modules'} of this model; "
            f"it has: {', '.join(names)} (or use all-linear)"
        )
    return list(requested)


def lora_kwargs(hp: Hyperparameters, target_modules: str | list[str]) -> dict[str, Any]:
    """Keyword arguments of peft.LoraConfig."""
    return {
        "r": hp.lora_rank,
        "lora_alpha": hp.lora_alpha,
        "lora_dropout": hp.lora_dropout,
        "target_modules": target_modules,
        "bias": "none",
        "task_type": "CAUSAL_LM",
    }


def _warmup_steps(hp: Hyperparameters) -> float:
    if hp.warmup_steps is not None:
        return float(hp.warmup_steps)
    if hp.warmup_ratio is not None:
        # transformers reads values below 1 as a ratio and 1.0 as "one step".
        return min(hp.warmup_ratio, 0.999999)
    return 0.0


def evaluation_kwargs(evaluation: Evaluation | None, *, has_eval: bool) -> dict[str, Any]:
    """eval_strategy/eval_steps: an eval set without spec.evaluation is evaluated every epoch."""
    if not has_eval:
        return {"eval_strategy": "no"}
    strategy = evaluation.strategy if evaluation is not None else "epoch"
    out: dict[str, Any] = {"eval_strategy": strategy}
    if strategy == "steps" and evaluation is not None:
        out["eval_steps"] = evaluation.steps
    return out


def sft_kwargs(
    hp: Hyperparameters,
    evaluation: Evaluation | None,
    *,
    precision: str,
    cuda: bool,
    has_eval: bool,
    output_dir: Path,
) -> dict[str, Any]:
    """Keyword arguments of trl.SFTConfig."""
    return {
        "output_dir": str(output_dir),
        "learning_rate": hp.learning_rate,
        "num_train_epochs": hp.epochs,
        "max_steps": hp.max_steps if hp.max_steps is not None else -1,
        "per_device_train_batch_size": hp.batch_size,
        "per_device_eval_batch_size": hp.batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "max_length": hp.max_seq_length,
        "packing": hp.packing,
        "lr_scheduler_type": hp.lr_scheduler.value,
        "warmup_steps": _warmup_steps(hp),
        "weight_decay": hp.weight_decay,
        "seed": hp.seed,
        "data_seed": hp.seed,
        # trl turns gradient (activation) checkpointing on by default; the spec decides.
        # transformers 5 calls it activation_checkpointing (the old name warns).
        "activation_checkpointing": hp.gradient_checkpointing,
        "logging_steps": hp.logging_steps,
        "logging_first_step": True,
        # trl defaults bf16 to True; set both explicitly.
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not cuda,
        "report_to": "none",
        # The reporter draws its own progress bar (or log lines).
        "disable_tqdm": True,
        "save_strategy": "no",
        "dataloader_num_workers": 0,
        **evaluation_kwargs(evaluation, has_eval=has_eval),
    }
