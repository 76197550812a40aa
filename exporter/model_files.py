"""A Hugging Face model folder: where its weights are, and the files that travel with them.

peft's ``save_pretrained`` after ``merge_and_unload`` writes weights and
config only — no tokenizer — and llama.cpp's converter then fails on the
folder. A merged model here gets every non-weight file of the base (config,
generation config, tokenizer, chat template, licence) and, on top, the
tokenizer files saved with the adapter (the tokenizer the adapter was
trained with, chat template included).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tuneforge.exporter.errors import ModelInvalid

INDEX_NAME: Final = "model.safetensors.index.json"
SINGLE_NAME: Final = "model.safetensors"
CONFIG_NAME: Final = "config.json"
WEIGHT_SUFFIXES: Final = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx")
# Not copied from the base: its weights' index and manifest, and what describes the base itself.
SKIPPED_NAMES: Final = frozenset({INDEX_NAME, "pytorch_model.bin.index.json", "_MANIFEST.json", "README.md"})
TOKENIZER_NAMES: Final = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "chat_template.jinja",
        "chat_template.json",
        "vocab.json",
        "merges.txt",
        "vocab.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
    }
)
# Leaf names of the modules that tie_word_embeddings shares (peft's EMBEDDING_LAYER_NAMES and kin).
TIED_MODULES: Final = ("embed_tokens", "lm_head", "wte", "word_embeddings", "embed_out")


@dataclass(frozen=True)
class WeightLayout:
    """The safetensors files of a model folder, in order, and its shard index (None: one file)."""

    shards: tuple[str, ...]
    index: dict[str, Any] | None


def find_weights(model_dir: Path) -> WeightLayout:
    """The model's safetensors weights; ModelInvalid saying what the folder holds instead."""
    model_dir = Path(model_dir)
    index_path = model_dir / INDEX_NAME
    if index_path.is_file():
        return _from_index(model_dir, index_path)
    if (model_dir / SINGLE_NAME).is_file():
        return WeightLayout((SINGLE_NAME,), None)
    if not model_dir.is_dir():
        raise ModelInvalid(f"the base model folder {model_dir} does not exist")
    others = sorted(p.name for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if others:
        raise ModelInvalid(
            f"the base model in {model_dir} has no {SINGLE_NAME} or {INDEX_NAME} "
            f"(it has {', '.join(others[:5])}); "
            "the streaming merge reads Hugging Face safetensors checkpoints — save the model with "
            "save_pretrained(safe_serialization=True)"
        )
    raise ModelInvalid(f"the base model folder {model_dir} holds no weights ({SINGLE_NAME} or {INDEX_NAME})")


def _from_index(model_dir: Path, index_path: Path) -> WeightLayout:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
        shards = tuple(sorted(set(weight_map.values())))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelInvalid(f"{index_path} is not a valid shard index: {err}") from None
    missing = [name for name in shards if not (model_dir / name).is_file()]
    if missing:
        raise ModelInvalid(f"{index_path} names shard {missing[0]}, which is not in {model_dir}")
    return WeightLayout(shards, index)


def read_config(model_dir: Path) -> dict[str, Any]:
    """The model's config.json ({} when it has none)."""
    path = Path(model_dir) / CONFIG_NAME
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelInvalid(f"{path} is not valid JSON: {err}") from None
    return config if isinstance(config, dict) else {}


def tied_weight_keys(config: dict[str, Any], base_keys: Iterable[str]) -> set[str]:
    """Weights stored once and shared by input and output embeddings, when the config ties them."""
    if not config.get("tie_word_embeddings"):
        return set()
    keys = {
        k
        for k in base_keys
        if k.endswith(".weight") and k.rpartition(".")[0].rpartition(".")[2] in TIED_MODULES
    }
    return keys | {"lm_head.weight"}


def copy_side_files(base: Path, adapter: Path, out: Path) -> list[str]:
    """Copies the base's non-weight files, then the adapter's tokenizer files over them; returns names."""
    copied = []
    for path in sorted(Path(base).rglob("*")):
        rel = path.relative_to(base)
        if not path.is_file() or _skipped(rel):
            continue
        _copy(path, out / rel)
        copied.append(rel.as_posix())
    for path in sorted(Path(adapter).iterdir()):
        if path.is_file() and path.name in TOKENIZER_NAMES:
            _copy(path, out / path.name)
            if path.name not in copied:
                copied.append(path.name)
    return sorted(copied)


def _skipped(rel: Path) -> bool:
    return (
        any(part.startswith(".") for part in rel.parts)
        or rel.name in SKIPPED_NAMES
        or rel.suffix in WEIGHT_SUFFIXES
    )


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)


def write_index(out: Path, layout: WeightLayout, total_size: int) -> None:
    """The merged model's shard index: the base's, with the new total size."""
    if layout.index is None:
        return
    index = dict(layout.index)
    index["metadata"] = {**(index.get("metadata") or {}), "total_size": total_size}
    (out / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def set_config_dtype(out: Path, dtype_name: str) -> None:
    """Records the merged weights' dtype in config.json, as save_pretrained would."""
    path = out / CONFIG_NAME
    config = read_config(out)
    if not config:
        return
    config["dtype"] = dtype_name
    if "torch_dtype" in config:
        config["torch_dtype"] = dtype_name
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
