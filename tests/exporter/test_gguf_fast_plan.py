"""What the fast path takes on and what it leaves to the converter (pure planning, real gguf-py name maps)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tuneforge.exporter.gguf_fast import refusal
from tuneforge.exporter.gguf_tensors import (
    SUPPORTED,
    ModelShape,
    SourceTensor,
    Unsupported,
    index_weights,
    model_shape,
    plan_tensors,
)

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def name_map(gguf: ModuleType, shape: ModelShape) -> Any:
    arch = next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == shape.rule.gguf_arch)
    return gguf.get_tensor_name_map(arch, shape.block_count)


def tensor(name: str, shape: tuple[int, ...], dtype: str = "BF16") -> SourceTensor:
    size = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1}[dtype]
    count = 1
    for dim in shape:
        count *= dim
    return SourceTensor(name, dtype, shape, Path("model.safetensors"), 0, count * size)


def test_llama_tensors_get_the_converters_names_types_and_head_groups(gguf: ModuleType) -> None:
    shape = model_shape(LLAMA, "f16")
    sources = [
        tensor("lm_head.weight", (32, 16)),
        tensor("model.embed_tokens.weight", (32, 16)),
        tensor("model.layers.0.input_layernorm.weight", (16,)),
        tensor("model.layers.0.self_attn.k_proj.weight", (8, 16)),
        tensor("model.layers.0.self_attn.q_proj.bias", (16,), "F32"),
        tensor("model.layers.0.self_attn.q_proj.weight", (16, 16)),
        tensor("model.layers.0.self_attn.rotary_emb.inv_freq", (2,), "F32"),  # the converter drops it
        tensor("model.layers.0.mlp.down_proj.weight", (16, 24), "F16"),
    ]
    plan = plan_tensors(sources, shape, name_map(gguf, shape))
    assert [(p.name, p.out_type, p.permute_heads) for p in plan] == [
        ("output.weight", "F16", None),
        ("token_embd.weight", "F16", None),
        ("blk.0.attn_norm.weight", "F32", None),
        ("blk.0.attn_k.weight", "F16", 2),  # key/value heads
        ("blk.0.attn_q.bias", "F32", 4),
        ("blk.0.attn_q.weight", "F16", 4),
        ("blk.0.ffn_down.weight", "F16", None),
    ]
    assert plan[0].nbytes == 32 * 16 * 2 and plan[4].nbytes == 16 * 4


def test_qwen2_keeps_q_and_k_rows_as_they_are(gguf: ModuleType) -> None:
    shape = model_shape({**LLAMA, "architectures": ["Qwen2ForCausalLM"]}, "f16")
    sources = [tensor("model.layers.0.self_attn.q_proj.weight", (16, 16))]
    sources.append(tensor("model.layers.0.self_attn.k_proj.bias", (8,)))
    plan = plan_tensors(sources, shape, name_map(gguf, shape))
    assert [(p.name, p.out_type, p.permute_heads) for p in plan] == [
        ("blk.0.attn_q.weight", "F16", None),
        ("blk.0.attn_k.bias", "F32", None),
    ]


@pytest.mark.parametrize(
    ("source", "why"),
    [
        (tensor("model.layers.0.mlp.experts.0.w1.weight", (8, 8)), "not one of a plain decoder's"),
        (tensor("model.vision_tower.proj.weight", (8, 8)), "not one of a plain decoder's"),
        (tensor("model.layers.0.mlp.up_proj.weight", (8, 8), "F8_E4M3"), "is F8_E4M3"),
        (tensor("model.layers.0.self_attn.q_proj.weight", (12, 8)), "do not split into 4 heads"),
        (tensor("model.layers.3.mlp.up_proj.weight", (8, 8)), "maps to None"),  # past block_count
    ],
)
def test_tensors_outside_the_rules_are_left_to_the_converter(
    gguf: ModuleType, source: SourceTensor, why: str
) -> None:
    shape = model_shape(LLAMA, "f16")
    with pytest.raises(Unsupported, match=why):
        plan_tensors([source], shape, name_map(gguf, shape))


@pytest.mark.parametrize(
    ("change", "outtype", "why"),
    [
        ({}, "bf16", "writes f16 only, not bf16"),
        ({"architectures": ["Qwen3ForCausalLM"]}, "f16", "'Qwen3ForCausalLM' is not one"),
        ({"architectures": []}, "f16", "architecture None"),
        ({"quantization_config": {"quant_method": "fp8"}}, "f16", "quantized"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "f16", "Llama 3 RoPE"),
        ({"rope_parameters": {"full_attention": {"rope_type": "llama3"}}}, "f16", "Llama 3 RoPE"),
        ({"text_config": {}}, "f16", "composite"),
        ({"draft_vocab_size": 100}, "f16", "EAGLE-3"),
        ({"num_attention_heads": 0}, "f16", "num_attention_heads is 0"),
    ],
)
def test_configs_outside_the_rules_are_left_to_the_converter(
    change: dict[str, Any], outtype: str, why: str
) -> None:
    with pytest.raises(Unsupported, match=why):
        model_shape({**LLAMA, **change}, outtype)


def test_key_value_heads_default_to_the_attention_heads() -> None:
    config = {key: value for key, value in LLAMA.items() if key != "num_key_value_heads"}
    assert model_shape(config, "f16").head_count_kv == 4
    assert set(SUPPORTED) == {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}


def test_refusal_reads_the_model_folder(tmp_path: Path) -> None:
    assert refusal(tmp_path, "f16") is not None and "config.json is unreadable" in str(
        refusal(tmp_path, "f16")
    )
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    assert refusal(tmp_path, "f16") is None
    (tmp_path / "hf_quant_config.json").write_text("{}")
    assert refusal(tmp_path, "f16") == "the checkpoint is quantized (hf_quant_config.json)"


def headers(names: dict[str, list[str]]) -> Any:
    def read_header(path: Path) -> dict[str, SourceTensor]:
        return {name: tensor(name, (2,)) for name in names[path.name]}

    return read_header


def test_shards_are_read_in_the_converters_order(tmp_path: Path) -> None:
    shards = {"model-00002-of-00002.safetensors": ["b", "a"], "model-00001-of-00002.safetensors": ["z", "c"]}
    weight_map = {name: file for file, names in shards.items() for name in names}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert [t.name for t in index_weights(tmp_path, headers(shards))] == ["c", "z", "a", "b"]

    weight_map["missing"] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(Unsupported, match="list different tensors"):
        index_weights(tmp_path, headers(shards))


def test_without_an_index_the_model_files_are_sorted(tmp_path: Path) -> None:
    shards = {"model-b.safetensors": ["x"], "model-a.safetensors": ["y"], "other.safetensors": ["w"]}
    for name in shards:
        (tmp_path / name).touch()
    assert [t.name for t in index_weights(tmp_path, headers(shards))] == ["y", "x"]
    (tmp_path / "model-a.safetensors").unlink()
    (tmp_path / "model-b.safetensors").unlink()
    with pytest.raises(Unsupported, match="no model"):
        index_weights(tmp_path, headers(shards))
