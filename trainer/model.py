"""Load the base model and tokenizer, and describe what the spec can target in it."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.trainer.errors import InvalidSpec, ModelInvalid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hardware:
    """What this machine can do, as the precision and attention choices need it."""

    cuda: bool
    bf16_supported: bool
    flash_attn_installed: bool

    @classmethod
    def detect(cls) -> Hardware:
        import torch

        cuda = torch.cuda.is_available()
        return cls(
            cuda=cuda,
            bf16_supported=cuda and torch.cuda.is_bf16_supported(),
            flash_attn_installed=importlib.util.find_spec("flash_attn") is not None,
        )


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError, KeyError) as err:
        raise ModelInvalid(f"cannot load a tokenizer from the model folder {model_dir}: {err}") from err
    if tokenizer.pad_token is None:
        log.info("the tokenizer has no pad token; padding with the eos token %r", tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_dir: Path, *, precision: str, attn_implementation: str | None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        raise ModelInvalid(f"cannot load a causal language model from {model_dir}: {err}") from err


def linear_module_names(model: Any) -> list[str]:
    """Leaf names of the model's linear layers (q_proj, down_proj, lm_head, ...): what LoRA can target."""
    import torch

    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
        }
    )


def check_chat_template(tokenizer: Any, fmt: str, model_dir: Path) -> None:
    if fmt == "chat" and not getattr(tokenizer, "chat_template", None):
        raise InvalidSpec(
            f"chat data needs a model with a chat template and the model in {model_dir} has none: "
            "use an instruct/chat model, or alpaca-format data"
        )


def copy_sentencepiece_model(model_dir: Path, dest: Path) -> None:
    """Keep tokenizer.model beside the adapter: transformers 5 does not write it, llama.cpp reads it."""
    source = model_dir / "tokenizer.model"
    if source.is_file() and not (dest / "tokenizer.model").exists():
        (dest / "tokenizer.model").write_bytes(source.read_bytes())
