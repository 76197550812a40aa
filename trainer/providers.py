"""Training providers: huggingface (transformers + peft + trl, the default) and unsloth.

Unsloth patches transformers for faster, leaner training on NVIDIA GPUs. It is
used when the trainer image has it and the pod has a GPU; anywhere else the
run is refused with a reason and what to use instead, before any data is read.
The unsloth path is written against its documented API
(``FastLanguageModel.from_pretrained`` / ``FastLanguageModel.get_peft_model``)
and can only run on a CUDA machine with unsloth installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

from tuneforge import exitcodes
from tuneforge.api.finetunejob import FineTuneJobSpec, Method, Provider
from tuneforge.trainer.errors import TrainerError, UnsupportedHardware

log = logging.getLogger(__name__)

UNSLOTH = "unsloth"
INSTEAD = "use spec.provider huggingface (the default), which trains the same spec more slowly"


class ProviderUnavailable(TrainerError):
    """The spec asks for a provider this trainer image does not have."""

    reason = "ProviderUnavailable"
    exit_code = exitcodes.UNSUPPORTED


def unsloth_installed() -> bool:
    return importlib.util.find_spec(UNSLOTH) is not None


def check_provider(spec: FineTuneJobSpec, *, cuda: bool, installed: bool | None = None) -> None:
    """Refuse a provider this machine cannot run; import unsloth early when it can.

    Unsloth must be imported before transformers to patch it, so this runs
    before the trainer imports anything of the training stack.
    """
    if spec.provider != Provider.unsloth:
        return
    has_unsloth = unsloth_installed() if installed is None else installed
    if not cuda and has_unsloth:
        raise UnsupportedHardware(
            f"spec.provider unsloth needs a CUDA GPU and this machine has none: {INSTEAD}, "
            "or request a GPU with spec.resources.gpus"
        )
    if not cuda:
        raise UnsupportedHardware(
            "spec.provider unsloth needs a CUDA GPU and the unsloth package; this machine has no GPU and "
            f"the trainer image has no unsloth: {INSTEAD}, or request a GPU with spec.resources.gpus "
            "and run an image with unsloth installed"
        )
    if not has_unsloth:
        raise ProviderUnavailable(
            f"spec.provider unsloth: the trainer image has no unsloth package; {INSTEAD}, "
            "or run an image with unsloth installed (pip install unsloth)"
        )
    importlib.import_module(UNSLOTH)
    log.info("provider unsloth")


def unsloth_load_kwargs(spec: FineTuneJobSpec, model_dir: Path, dtype: Any) -> dict[str, Any]:
    """Keyword arguments of ``FastLanguageModel.from_pretrained``."""
    return {
        "model_name": str(model_dir),
        "max_seq_length": spec.hyperparameters.max_seq_length,
        "dtype": dtype,
        "load_in_4bit": spec.method == Method.qlora,
        "full_finetuning": spec.method == Method.full,
        "local_files_only": True,
    }


def unsloth_peft_kwargs(spec: FineTuneJobSpec, target_modules: list[str]) -> dict[str, Any]:
    """Keyword arguments of ``FastLanguageModel.get_peft_model``."""
    hp = spec.hyperparameters
    return {
        "r": hp.lora_rank,
        "lora_alpha": hp.lora_alpha,
        "lora_dropout": hp.lora_dropout,
        "target_modules": target_modules,
        "bias": "none",
        # Unsloth's own offloaded checkpointing, when the spec asks for checkpointing at all.
        "use_gradient_checkpointing": UNSLOTH if hp.gradient_checkpointing else False,
        "random_state": hp.seed,
    }


def load_with_unsloth(spec: FineTuneJobSpec, model_dir: Path, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from unsloth; LoRA/QLoRA models come back already wrapped with their adapter."""
    from unsloth import FastLanguageModel

    from tuneforge.trainer.hyperparams import ALL_LINEAR, resolve_target_modules
    from tuneforge.trainer.model import linear_module_names

    model, tokenizer = FastLanguageModel.from_pretrained(**unsloth_load_kwargs(spec, model_dir, dtype))
    if spec.method == Method.full:
        return model, tokenizer
    available = linear_module_names(model)
    targets = resolve_target_modules(spec.hyperparameters.target_modules, available)
    if targets == ALL_LINEAR:
        # Unsloth takes module names; all-linear means every linear layer but the output head.
        targets = [name for name in available if name != "lm_head"]
    model = FastLanguageModel.get_peft_model(model, **unsloth_peft_kwargs(spec, list(targets)))
    return model, tokenizer
