"""QLoRA: load the base model in 4 bits (bitsandbytes nf4, double quantization), then make it trainable.

The compute dtype follows the precision chosen for the hardware (bf16 or fp16
on CUDA, fp32 on CPU): 4-bit weights are dequantized to it for every matmul.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from tuneforge.trainer.errors import UnsupportedHardware

QUANT_TYPE = "nf4"
COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def compute_dtype(precision: str) -> str:
    """The torch dtype name 4-bit layers compute in, for a resolved precision (bf16, fp16, fp32)."""
    try:
        return COMPUTE_DTYPES[precision]
    except KeyError:
        raise ValueError(
            f"unknown precision {precision!r}; expected one of {', '.join(COMPUTE_DTYPES)}"
        ) from None


def bnb_config_kwargs(precision: str) -> dict[str, Any]:
    """Keyword arguments of transformers.BitsAndBytesConfig for QLoRA (dtype as a name)."""
    return {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": QUANT_TYPE,
        # Quantizes the quantization constants too: about 0.4 bits per parameter less.
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": compute_dtype(precision),
    }


def require_bitsandbytes() -> None:
    """Refuse QLoRA where bitsandbytes is not installed (UNSUPPORTED, before any data is read)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UnsupportedHardware(
            "spec.method qlora needs the bitsandbytes package, which this trainer image does not have; "
            "use method lora, or an image built with the trainer extra"
        )


def quantization_config(precision: str) -> Any:
    """The BitsAndBytesConfig that loads a model for QLoRA."""
    import torch
    from transformers import BitsAndBytesConfig

    kwargs = bnb_config_kwargs(precision)
    kwargs["bnb_4bit_compute_dtype"] = getattr(torch, kwargs["bnb_4bit_compute_dtype"])
    return BitsAndBytesConfig(**kwargs)  # type: ignore[no-untyped-call]


def prepare_for_training(model: Any, *, gradient_checkpointing: bool) -> Any:
    """peft's preparation of a k-bit model: norms and head in fp32, input gradients on.

    peft turns gradient checkpointing on unless told otherwise; the spec decides.
    """
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
        model, use_gradient_checkpointing=gradient_checkpointing
    )


def is_4bit(model: Any) -> bool:
    """True when the model's linear layers hold 4-bit weights."""
    return bool(getattr(model, "is_loaded_in_4bit", False))
