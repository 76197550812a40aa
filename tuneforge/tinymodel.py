"""Build the tiny offline model: a SentencePiece tokenizer and a random Llama.

Nothing can come from the Hugging Face Hub in tests or the demo, so this
builds a real (if untrained) Llama-architecture model in a few seconds from
the bundled sample data: deterministic for a given seed, loadable with
``AutoTokenizer`` / ``AutoModelForCausalLM``, trainable with trl and
convertible by llama.cpp.

Choices that matter downstream:
- the chat markers are SentencePiece *control* symbols (llama.cpp splits
  user-defined ones into characters);
- no dummy prefix, in SentencePiece and in the Hugging Face tokenizer alike,
  so both (and llama.cpp, which reads the flag from tokenizer.model) produce
  the same ids and every text round-trips exactly;
- newlines are never part of a learned piece (always the byte token
  <0x0A>), so a prompt ending in "\n" tokenizes the same alone and followed
  by its answer, as trl's prompt/completion masking needs;
- eos is <|im_end|> (the end of an assistant turn), no BOS is added;
- hidden size 256: llama.cpp's K-quants need dimensions divisible by 256.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# ChatML with {% generation %} markers around what the assistant says, which
# trl's assistant_only_loss needs to mask everything else.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

VOCAB_SIZE = 2048
HIDDEN_SIZE = 256
INTERMEDIATE_SIZE = 512
LAYERS = 2
HEADS = 4
KV_HEADS = 2
MAX_POSITIONS = 512


@dataclass(frozen=True)
class Size:
    """The transformer's shape; the tokenizer (and so the vocabulary) is the same for every size."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int


SIZES = {
    # ~2.2M parameters: the tests' model, trained in seconds.
    "tiny": Size(HIDDEN_SIZE, INTERMEDIATE_SIZE, LAYERS, HEADS, KV_HEADS),
    # ~21M parameters: big enough for throughput to be about the model, not the Python around it
    # (bench/train_throughput.py).
    "small": Size(hidden=512, intermediate=1536, layers=6, heads=8, kv_heads=4),
}

# Frequent words of the chat template and prompt formats: in the corpus so
# they become compact tokens.
_EXTRA_LINES = ("system", "user", "assistant", "### Instruction:", "### Input:", "### Response:")


def default_data_dir() -> Path:
    """examples/data of the source tree this module lives in."""
    return Path(__file__).resolve().parent.parent / "examples" / "data"


def corpus_lines(data_dir: Path) -> list[str]:
    """Every text field of the sample JSONL files (alpaca and chat), in a stable order."""
    files = sorted(data_dir.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.jsonl sample data in {data_dir} (pass --data DIR)")
    lines: list[str] = list(_EXTRA_LINES) * 20
    for path in files:
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if raw.strip():
                lines.extend(_texts(json.loads(raw), f"{path}:{number}"))
    return [line for line in lines if line]


def _texts(record: Any, where: str) -> Iterator[str]:
    """Every string in a record, whatever its format (alpaca, chat, preference...)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    # Line by line: no learned piece then holds a newline, so "\n" is always its
    # own byte token and never merges with what follows (as in Llama 2). A prompt
    # ending in "assistant\n" then tokenizes the same alone and with its answer.
    for text in _strings(record):
        yield from text.split("\n")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def train_sentencepiece(lines: Iterable[str], vocab_size: int = VOCAB_SIZE) -> bytes:
    """A serialized SentencePiece BPE model; deterministic (one thread)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=True,
        # Identity normalization and no dummy prefix: decode(encode(x)) == x.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        allow_whitespace_only_pieces=True,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        unk_piece="<unk>",
        bos_piece="<s>",
        eos_piece="</s>",
        pad_piece="<pad>",
        control_symbols=[IM_START, IM_END],
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def build_tokenizer(sp_model: bytes, workdir: Path) -> Any:
    """The Hugging Face tokenizer for ``sp_model``, with pad/eos and the chat template.

    Built through ``from_pretrained`` on a folder holding tokenizer.model: the
    constructor's ``vocab_file`` argument is silently ignored in transformers 5.
    """
    from transformers import LlamaTokenizer

    (workdir / "tokenizer.model").write_bytes(sp_model)
    tokenizer = LlamaTokenizer.from_pretrained(
        workdir,
        add_prefix_space=False,
        add_bos_token=False,
        add_eos_token=False,
        pad_token="<pad>",
        # The end of an assistant turn is the end of generation, as in Qwen's ChatML models.
        eos_token=IM_END,
        legacy=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = MAX_POSITIONS
    return tokenizer


def build_model(tokenizer: Any, seed: int, size: str = "tiny") -> Any:
    """A randomly initialised LlamaForCausalLM of ``SIZES[size]``, its vocabulary ``tokenizer``'s."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=SIZES[size].hidden,
        intermediate_size=SIZES[size].intermediate,
        num_hidden_layers=SIZES[size].layers,
        num_attention_heads=SIZES[size].heads,
        num_key_value_heads=SIZES[size].kv_heads,
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=64,
    )
    return model


def build_tiny_model(dest: Path, *, seed: int = 0, data_dir: Path | None = None, size: str = "tiny") -> Path:
    """Build the model (``SIZES[size]``) and tokenizer into ``dest`` (created); returns ``dest``."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} (sizes: {', '.join(SIZES)})")
    dest = Path(dest)
    sp_model = train_sentencepiece(corpus_lines(data_dir or default_data_dir()))
    with tempfile.TemporaryDirectory(prefix="tinymodel-") as scratch:
        tokenizer = build_tokenizer(sp_model, Path(scratch))
    model = build_model(tokenizer, seed, size)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    # Full tokenizer files (tokenizer.json, tokenizer_config.json): with
    # tokenizer.model alone AutoTokenizer picks wrong ids.
    tokenizer.save_pretrained(dest)
    # transformers 5 writes no tokenizer.model, but llama.cpp's converter reads
    # the SentencePiece vocabulary (and its control symbols) from it.
    (dest / "tokenizer.model").write_bytes(sp_model)
    _pin_special_token_flags(dest / "tokenizer_config.json")
    return dest


def _pin_special_token_flags(config_path: Path) -> None:
    """Write add_bos/add_eos explicitly: llama.cpp assumes a BOS for SentencePiece
    vocabularies unless tokenizer_config.json says otherwise."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(add_bos_token=False, add_eos_token=False)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tuneforge tiny-model",
        description="Build the tiny offline Llama model and SentencePiece tokenizer (demo and tests).",
    )
    parser.add_argument("dest", type=Path, help="folder to write the model into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument(
        "--data", type=Path, default=None, help="folder of *.jsonl sample data (default: examples/data)"
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="tiny",
        help="tiny (~2.2M parameters, default) or small (~21M, for benchmarks)",
    )
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        build_tiny_model(args.dest, seed=args.seed, data_dir=args.data, size=args.size)
    except (FileNotFoundError, ValueError) as err:
        print(f"tuneforge tiny-model: {err}", file=sys.stderr)
        return 3
    print(f"tiny model written to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
