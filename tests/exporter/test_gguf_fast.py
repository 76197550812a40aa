"""The fast f16 path writes llama.cpp's converter's file, byte for byte, and declines what it does not handle.

Each model below is converted twice: by ``convert_to_gguf`` (the fast path:
the converter's ``--vocab-only`` metadata, Tuneforge's tensors) and by
``convert_hf_to_gguf.py --outtype f16`` itself. The two files must have the
same metadata (no field differs: the general.* block that depends on the
parameter count is rebuilt with it), the same tensors in the same order with
the same types, shapes and bytes, and so be identical. The models cover each
rule of ``gguf_tensors``: f32, bf16 and f16 checkpoints, one or several
shards, q/k rows regrouped per head (Llama, Mistral, with fewer key/value
heads) or not (Qwen2, whose q/k/v biases stay f32), tied embeddings.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tuneforge.exporter.gguf import GgufFile, convert_to_gguf, quantize, verify_gguf
from tuneforge.exporter.gguf_tools import tools_dir

TIMEOUT = 300.0
TOKENIZER_FILES = ("tokenizer", "special_tokens", "chat_template")
SHAPE = {  # the tiny Llama's, so its tokenizer fits
    "vocab_size": 2048,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 512,
    "bos_token_id": 1,
    "eos_token_id": 5,
    "pad_token_id": 3,
}


def copy_tokenizer(source: Path, dest: Path) -> None:
    for path in source.iterdir():
        if path.name.startswith(TOKENIZER_FILES):
            shutil.copy2(path, dest / path.name)


def tiny_bf16_in_shards(tiny_model: Path, dest: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16)
    model.save_pretrained(dest, max_shard_size="2MB")
    copy_tokenizer(tiny_model, dest)


def random_model(kind: str, dtype: str, **config: Any) -> Callable[[Path, Path], None]:
    def build(tiny_model: Path, dest: Path) -> None:
        import torch
        import transformers

        torch.manual_seed(3)
        settings = getattr(transformers, f"{kind}Config")(**SHAPE, **config)
        model = getattr(transformers, f"{kind}ForCausalLM")(settings).to(getattr(torch, dtype))
        model.save_pretrained(dest)
        copy_tokenizer(tiny_model, dest)

    return build


VARIANTS: dict[str, Callable[[Path, Path], None] | None] = {
    "llama-f32": None,  # the tiny model itself
    "llama-bf16-sharded": tiny_bf16_in_shards,
    "mistral-f16": random_model("Mistral", "float16", sliding_window=128),
    "qwen2-bf16-tied": random_model("Qwen2", "bfloat16", tie_word_embeddings=True),
}


def reference_conversion(model: Path, out: Path) -> Path:
    """llama.cpp's converter alone, as convert_to_gguf ran it before the fast path."""
    command = [sys.executable, str(tools_dir() / "convert_hf_to_gguf.py"), str(model), "--outtype", "f16"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([*command, "--outfile", str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def conversions(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, GgufFile, Path]]:
    """Per variant: the model folder, the fast path's GgufFile, the converter's file (made in parallel)."""
    root = tmp_path_factory.mktemp("gguf-fast")
    models = {}
    for name, build in VARIANTS.items():
        models[name] = tiny_model if build is None else root / name
        if build is not None:
            build(tiny_model, models[name])

    def fast(name: str) -> GgufFile:
        (root / "fast" / name).mkdir(parents=True)
        return convert_to_gguf(models[name], root / "fast" / name / "model-f16.gguf", timeout=TIMEOUT)

    def reference(name: str) -> Path:
        return reference_conversion(models[name], root / f"{name}-reference.gguf")

    with ThreadPoolExecutor(max_workers=4) as pool:
        fast_files = {name: pool.submit(fast, name) for name in VARIANTS}
        references = {name: pool.submit(reference, name) for name in VARIANTS}
        return {
            name: (models[name], fast_files[name].result(), references[name].result()) for name in VARIANTS
        }


def metadata(reader: Any) -> dict[str, tuple[list[int], Any]]:
    return {
        name: ([int(t) for t in field.types], field.contents())
        for name, field in reader.fields.items()
        if not name.startswith("GGUF.")
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_fast_f16_gguf_is_the_converters_byte_for_byte(
    variant: str, conversions: dict[str, tuple[Path, GgufFile, Path]], gguf: ModuleType
) -> None:
    _, fast, reference = conversions[variant]
    assert fast.method == "fast" and fast.qtype == "f16"
    assert [p.name for p in fast.path.parent.iterdir()] == ["model-f16.gguf"]  # no temporary left

    ours, theirs = gguf.GGUFReader(fast.path), gguf.GGUFReader(reference)
    ours_meta, their_meta = metadata(ours), metadata(theirs)
    assert list(ours_meta) == list(their_meta)  # same keys, same order
    assert [k for k in ours_meta if ours_meta[k] != their_meta[k]] == []
    assert their_meta["general.size_label"][1]  # the field a vocab-only run lacks
    assert [(t.name, t.tensor_type.name, t.shape.tolist()) for t in ours.tensors] == [
        (t.name, t.tensor_type.name, t.shape.tolist()) for t in theirs.tensors
    ]
    for mine, reference_tensor in zip(ours.tensors, theirs.tensors, strict=True):
        assert mine.data.tobytes() == reference_tensor.data.tobytes(), mine.name
    assert fast.path.read_bytes() == reference.read_bytes()
    assert fast.size_bytes == reference.stat().st_size


def test_the_variants_exercise_every_rule(
    conversions: dict[str, tuple[Path, GgufFile, Path]], gguf: ModuleType
) -> None:
    kinds = {}
    for variant, (model, _, reference) in conversions.items():
        reader = gguf.GGUFReader(reference)
        kinds[variant] = {
            "shards": len(list(model.glob("*.safetensors"))),
            "types": sorted({t.tensor_type.name for t in reader.tensors}),
            "output": any(t.name == "output.weight" for t in reader.tensors),
            "biases": any(t.name.endswith("attn_q.bias") for t in reader.tensors),
        }
    assert kinds["llama-bf16-sharded"]["shards"] > 1
    assert not kinds["qwen2-bf16-tied"]["output"] and kinds["qwen2-bf16-tied"]["biases"]
    assert all(kind["types"] == ["F16", "F32"] for kind in kinds.values())


def test_a_fast_gguf_verifies_and_quantizes(conversions: dict[str, tuple[Path, GgufFile, Path]]) -> None:
    model, fast, _ = conversions["llama-bf16-sharded"]
    check = verify_gguf(fast.path, model, qtype="f16", timeout=TIMEOUT)
    assert check.passed, check.summary()

    quantized = quantize(fast.path, fast.path.parent / "model-q8_0.gguf", "q8_0", timeout=TIMEOUT)
    check = verify_gguf(quantized.path, model, qtype="q8_0", timeout=TIMEOUT)
    assert check.passed, check.summary()


def test_an_architecture_the_fast_path_does_not_handle_goes_to_the_converter(
    tiny_model: Path, tmp_path: Path, gguf: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    model = tmp_path / "qwen3"
    random_model("Qwen3", "bfloat16")(tiny_model, model)

    with caplog.at_level(logging.INFO, logger="tuneforge.exporter.gguf_fast"):
        converted = convert_to_gguf(model, tmp_path / "out" / "model-f16.gguf", timeout=TIMEOUT)

    assert converted.method == "llama.cpp"
    assert "architecture 'Qwen3ForCausalLM' is not one the fast path handles" in caplog.text
    reader = gguf.GGUFReader(converted.path)
    assert reader.fields["general.architecture"].contents() == "qwen3"
    assert {t.tensor_type.name for t in reader.tensors} == {"F16", "F32"}
    assert [p.name for p in converted.path.parent.iterdir()] == ["model-f16.gguf"]
