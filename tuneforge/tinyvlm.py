"""Build the tiny offline vision-language model: a random LLaVA with a tiny CLIP vision tower.

Nothing comes from the Hugging Face Hub: the language half is the tiny Llama
of ``tuneforge.tinymodel`` (same SentencePiece tokenizer, plus an ``<image>``
token), the vision tower a 2-layer CLIP encoder on 32x32 images (16 patches
of 8x8, so 16 image tokens per image), and the processor is assembled from
local pieces: LLaVA's Pillow image processor, the tokenizer and a ChatML
template that renders image parts as ``<image>`` and marks the assistant's
turns with ``{% generation %}`` (trl's assistant-only loss needs them).
It loads with ``AutoProcessor`` / ``AutoModelForImageTextToText`` and trains
with trl's vision-language SFT path in seconds on a CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from tuneforge import tinymodel

IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 32
PATCH_SIZE = 8
VISION_HIDDEN = 64
VISION_LAYERS = 2
VISION_HEADS = 2

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}"
    "{%- set parts = [{'type': 'text', 'text': message['content']}] %}"
    "{%- else %}{%- set parts = message['content'] %}{%- endif %}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}"
    "{%- for part in parts %}{%- if part['type'] == 'text' %}{{- part['text'] }}{%- endif %}{%- endfor %}"
    "{{- '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{%- for part in parts %}"
    "{%- if part['type'] == 'image' %}{{- '<image>' }}"
    "{%- elif part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_processor(tokenizer: Any) -> Any:
    """LLaVA's processor from the tokenizer (given an ``<image>`` token) and a Pillow image processor."""
    from transformers import LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(  # type: ignore[no-untyped-call]
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        # CLIP adds a CLS token, which the "default" strategy drops again.
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )


def build_model(tokenizer: Any, seed: int) -> Any:
    """A randomly initialised LlavaForConditionalGeneration: tiny CLIP tower + the tiny Llama."""
    import torch
    from transformers import CLIPVisionConfig, GenerationConfig, LlavaConfig, LlavaForConditionalGeneration

    text = tinymodel.build_model(tokenizer, seed).config
    vision = CLIPVisionConfig(
        hidden_size=VISION_HIDDEN,
        intermediate_size=2 * VISION_HIDDEN,
        projection_dim=VISION_HIDDEN,
        num_hidden_layers=VISION_LAYERS,
        num_attention_heads=VISION_HEADS,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=32,
    )
    return model


def build_tiny_vlm(dest: Path, *, seed: int = 0, data_dir: Path | None = None) -> Path:
    """Build the tiny VLM and its processor into ``dest`` (created); returns ``dest``."""
    dest = Path(dest)
    sp_model = tinymodel.train_sentencepiece(tinymodel.corpus_lines(data_dir or tinymodel.default_data_dir()))
    with tempfile.TemporaryDirectory(prefix="tinyvlm-") as scratch:
        tokenizer = tinymodel.build_tokenizer(sp_model, Path(scratch))
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, seed)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    processor.save_pretrained(dest)
    (dest / "tokenizer.model").write_bytes(sp_model)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tuneforge tiny-vlm",
        description="Build the tiny offline vision-language model (LLaVA: CLIP tower + Llama) for tests.",
    )
    parser.add_argument("dest", type=Path, help="folder to write the model into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument(
        "--data", type=Path, default=None, help="folder of *.jsonl sample data (default: examples/data)"
    )
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        build_tiny_vlm(args.dest, seed=args.seed, data_dir=args.data)
    except (FileNotFoundError, ValueError) as err:
        print(f"tuneforge tiny-vlm: {err}", file=sys.stderr)
        return 3
    print(f"tiny vision-language model written to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
