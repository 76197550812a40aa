"""Random models for benchmarks: a Llama checkpoint of any size, written tensor by tensor.

``build_random_llama`` never holds more than one tensor in memory, so a
multi-GB checkpoint builds on a small machine; ``build_random_lora`` writes
a peft LoRA adapter for it with nonzero B (so a merge changes every targeted
weight). Shared by the benchmarks (merge_memory, gguf_convert).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from tuneforge.exporter.safetensors_stream import NAMES, OutputTensor, StreamingWriter

LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LlamaShape:
    hidden: int = 2048
    intermediate: int = 5632
    layers: int = 22
    heads: int = 32
    kv_heads: int = 4
    vocab: int = 32000

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes in the order transformers' LlamaForCausalLM lists them."""
        kv = self.kv_heads * self.head_dim
        out = [("model.embed_tokens.weight", (self.vocab, self.hidden))]
        for i in range(self.layers):
            p = f"model.layers.{i}"
            out += [
                (f"{p}.self_attn.q_proj.weight", (self.hidden, self.hidden)),
                (f"{p}.self_attn.k_proj.weight", (kv, self.hidden)),
                (f"{p}.self_attn.v_proj.weight", (kv, self.hidden)),
                (f"{p}.self_attn.o_proj.weight", (self.hidden, self.hidden)),
                (f"{p}.mlp.gate_proj.weight", (self.intermediate, self.hidden)),
                (f"{p}.mlp.up_proj.weight", (self.intermediate, self.hidden)),
                (f"{p}.mlp.down_proj.weight", (self.hidden, self.intermediate)),
                (f"{p}.input_layernorm.weight", (self.hidden,)),
                (f"{p}.post_attention_layernorm.weight", (self.hidden,)),
            ]
        return out + [("model.norm.weight", (self.hidden,)), ("lm_head.weight", (self.vocab, self.hidden))]

    def config(self, dtype: torch.dtype) -> dict[str, object]:
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab,
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-5,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "dtype": str(dtype).removeprefix("torch."),
        }


def _random(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    if len(shape) == 1:
        return torch.ones(shape, dtype=dtype)  # norm weights
    return (torch.randn(shape, generator=generator) * 0.02).to(dtype)


def build_random_llama(
    out: Path,
    shape: LlamaShape = LlamaShape(),
    *,
    dtype: torch.dtype = torch.bfloat16,
    shard_bytes: int = 1 << 30,
    seed: int = 0,
    tokenizer_from: Path | None = None,
) -> int:
    """Writes a random Llama checkpoint (sharded past ``shard_bytes``) to ``out``; returns its bytes."""
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    shards: list[list[OutputTensor]] = [[]]
    used = 0
    for name, dims in shape.tensors():
        tensor = OutputTensor(name, NAMES[dtype], dims)
        if shards[-1] and used + tensor.nbytes > shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(tensor)
        used += tensor.nbytes
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    if len(shards) == 1:
        names = ["model.safetensors"]
    weight_map = {}
    for file_name, planned in zip(names, shards, strict=True):
        with StreamingWriter(out / file_name, planned, {"format": "pt"}) as writer:
            for tensor in planned:
                writer.write(tensor.name, _random(tensor.shape, dtype, generator))
                weight_map[tensor.name] = file_name
    total = sum(t.nbytes for planned in shards for t in planned)
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    (out / "config.json").write_text(json.dumps(shape.config(dtype), indent=2), encoding="utf-8")
    if tokenizer_from is not None:
        for path in tokenizer_from.iterdir():
            if path.name.startswith(("tokenizer", "special_tokens", "chat_template")):
                shutil.copyfile(path, out / path.name)
    return total


def build_random_lora(
    out: Path,
    shape: LlamaShape = LlamaShape(),
    *,
    r: int = 16,
    alpha: int = 32,
    modules: tuple[str, ...] = LINEAR_MODULES,
    seed: int = 1,
) -> None:
    """Writes a peft LoRA adapter for ``shape`` with random A and B (fp32, as trainers save them)."""
    from peft import LoraConfig

    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    planned: list[OutputTensor] = []
    for name, dims in shape.tensors():
        module = name.removesuffix(".weight")
        if module.rpartition(".")[2] not in modules:
            continue
        fan_out, fan_in = dims
        planned.append(OutputTensor(f"base_model.model.{module}.lora_A.weight", "F32", (r, fan_in)))
        planned.append(OutputTensor(f"base_model.model.{module}.lora_B.weight", "F32", (fan_out, r)))
    with StreamingWriter(out / "adapter_model.safetensors", planned, {"format": "pt"}) as writer:
        for tensor in planned:
            writer.write(tensor.name, torch.randn(tensor.shape, generator=generator) * 0.01)
    LoraConfig(r=r, lora_alpha=alpha, target_modules=list(modules), task_type="CAUSAL_LM").save_pretrained(
        str(out)
    )
