"""Load the base model and tokenizer as the spec's method, modality and provider say.

lora: the base frozen in the training precision, LoRA adapters on top.
qlora: the base in 4 bits (tuneforge.trainer.quantization), LoRA on top.
full: every weight trained, in fp32 master weights (mixed precision on GPUs);
the artifact is the whole model instead of an adapter.
vision: a vision-language model and its processor (tuneforge.trainer.vision).
unsloth: unsloth loads and wraps the model (tuneforge.trainer.providers).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.api.finetunejob import FineTuneJobSpec, Method, Modality, Provider
from tuneforge.trainer import quantization
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


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def load_model(
    model_dir: Path,
    *,
    precision: str,
    attn_implementation: str | None,
    vision: bool = False,
    quantization_config: Any = None,
) -> Any:
    """The base model, its weights in ``precision`` (or 4 bits with ``quantization_config``)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": torch_dtype(precision)}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    auto = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    try:
        return auto.from_pretrained(model_dir, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        what = "a vision-language model" if vision else "a causal language model"
        # transformers follows "Unrecognized configuration class" with every class it knows: keep line one.
        first_line = str(err).strip().split("\n", 1)[0]
        hint = _modality_hint(model_dir, vision)
        raise ModelInvalid(f"cannot load {what} from {model_dir}: {first_line}{hint}") from err


def _modality_hint(model_dir: Path, vision: bool) -> str:
    """Point at spec.modality when the model's config says it is the other kind."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    is_vlm = isinstance(config, dict) and "vision_config" in config
    if is_vlm and not vision:
        return " (its config has a vision_config: is it a vision-language model? set spec.modality to vision)"
    if vision and not is_vlm:
        return " (spec.modality vision needs a vision-language model; this one looks text-only)"
    return ""


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


# --- what the spec trains, and what it produces -------------------------------------------

ADAPTER = "adapter"
MODEL = "model"


def artifact_name(spec: FineTuneJobSpec) -> str:
    """The artifact a run produces, by its status.artifacts name: the adapter, or the full model."""
    return MODEL if spec.method == Method.full else ADAPTER


def check_loadable(spec: FineTuneJobSpec, hardware: Hardware) -> None:
    """Refuse, before any data is read, what this image or machine cannot load (UNSUPPORTED)."""
    from tuneforge.trainer.providers import check_provider

    check_provider(spec, cuda=hardware.cuda)
    if spec.method == Method.qlora:
        quantization.require_bitsandbytes()
    if spec.modality == Modality.vision:
        from tuneforge.trainer.vision import require_pillow

        require_pillow()


def load_processing_class(spec: FineTuneJobSpec, model_dir: Path) -> Any:
    """The tokenizer, or for vision the processor (image processor + tokenizer + chat template)."""
    if spec.modality == Modality.vision:
        from tuneforge.trainer.vision import load_processor

        return load_processor(model_dir)
    return load_tokenizer(model_dir)


@dataclass
class TrainableModel:
    """A model ready for trl, and the LoRA config trl should wrap it with.

    ``peft_config`` is None when every weight is trained (method full) or when
    the provider has wrapped the model with its adapter already (unsloth).
    """

    model: Any
    peft_config: Any | None


def prepare_model(
    spec: FineTuneJobSpec, model_dir: Path, *, precision: str, attn_implementation: str | None
) -> TrainableModel:
    """Load the base model for ``spec.method`` / ``modality`` / ``provider``."""
    from peft import LoraConfig

    from tuneforge.trainer.hyperparams import lora_kwargs, resolve_target_modules

    hp = spec.hyperparameters
    if spec.provider == Provider.unsloth:
        from tuneforge.trainer.providers import load_with_unsloth

        model, _ = load_with_unsloth(spec, model_dir, torch_dtype(precision))
        return TrainableModel(model, None)
    vision = spec.modality == Modality.vision
    if spec.method == Method.full:
        # fp32 master weights: the optimizer must not step in bf16/fp16; autocast runs the matmuls
        # in the training precision (transformers' bf16/fp16 flags).
        model = load_model(
            model_dir, precision="fp32", attn_implementation=attn_implementation, vision=vision
        )
        log.info("full fine-tuning: %s trainable parameters", f"{count_parameters(model):,}")
        return TrainableModel(model, None)
    quantized = spec.method == Method.qlora
    model = load_model(
        model_dir,
        precision=precision,
        attn_implementation=attn_implementation,
        vision=vision,
        quantization_config=quantization.quantization_config(precision) if quantized else None,
    )
    if quantized:
        log.info("QLoRA: base model in 4 bits (nf4, double quantization), computing in %s", precision)
        model = quantization.prepare_for_training(model, gradient_checkpointing=hp.gradient_checkpointing)
    targets = resolve_target_modules(hp.target_modules, linear_module_names(model))
    return TrainableModel(model, LoraConfig(**lora_kwargs(hp, targets)))


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def base_dtype(model_dir: Path) -> str | None:
    """The dtype the base model's weights were published in (config.json), e.g. "bfloat16"."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    value = config.get("dtype") or config.get("torch_dtype")
    return value if isinstance(value, str) else None


def save_artifact(
    spec: FineTuneJobSpec, model: Any, processing_class: Any, model_dir: Path, dest: Path
) -> None:
    """Save the adapter, or for method full the whole model, with the tokenizer (or processor) beside it.

    A fully fine-tuned model is written in its base model's dtype (trained in
    fp32 master weights, a bf16 base stays a bf16 artifact of the same size).
    """
    import torch

    dest.mkdir(parents=True, exist_ok=True)
    if spec.method == Method.full and spec.provider == Provider.huggingface:
        dtype = getattr(torch, base_dtype(model_dir) or "", None)
        if isinstance(dtype, torch.dtype) and dtype.is_floating_point and dtype != torch.float32:
            model = model.to(dtype)
    model.save_pretrained(dest)
    processing_class.save_pretrained(dest)
    copy_sentencepiece_model(model_dir, dest)
