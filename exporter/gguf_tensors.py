"""Which tensors the fast f16 path writes, under which GGUF names, in which order and type (pure).

Each rule below restates what llama.cpp's ``convert_hf_to_gguf.py`` (the pinned
one) does to a model of a supported architecture, and only that:

- order: shards as the converter lists them (``model.safetensors.index.json``'s
  files sorted, else ``model*.safetensors`` sorted), tensors by name within a
  shard (``gguf.utility.SafetensorsLocal``);
- skipped: names ending ``.attention.masked_bias``, ``.attention.bias``,
  ``.rotary_emb.inv_freq`` (``ModelBase.prepare_tensors``);
- names: gguf-py's ``TensorNameMap`` for the architecture (``map_tensor_name``);
- Llama and Mistral (``LlamaModel``, ``undo_permute``): the rows of q_proj and
  k_proj (weights and biases) regrouped per head, ``LlamaModel.permute`` with
  the attention heads for q and the key/value heads for k;
- types: f32 for 1-D tensors, norms (``*_norm.weight``) and anything not named
  ``*.weight``, f16 for the rest (``prepare_tensors`` with ``--outtype f16``).

Anything outside these rules is refused with the reason (``Unsupported``), and
the exporter runs the converter instead: other architectures, quantized
checkpoints, Llama 3 RoPE scaling (the converter adds a computed
``rope_freqs`` tensor), multimodal configs, tensor names beyond a decoder-only
transformer's, dtypes other than F32/F16/BF16, output types other than f16.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol


class Unsupported(Exception):
    """The fast path does not handle this model; the message says why (the converter will)."""


@dataclass(frozen=True)
class ArchRule:
    gguf_arch: str
    """``general.architecture`` the converter writes for it."""
    permute_qk: bool
    """Whether the converter regroups q/k rows per head (LlamaModel.undo_permute)."""


SUPPORTED: Final[Mapping[str, ArchRule]] = {
    "LlamaForCausalLM": ArchRule("llama", permute_qk=True),
    "MistralForCausalLM": ArchRule("llama", permute_qk=True),  # the converter's LlamaModel too
    "Qwen2ForCausalLM": ArchRule("qwen2", permute_qk=False),
}

SOURCE_DTYPES: Final = {"F32": 4, "F16": 2, "BF16": 2}
"""safetensors dtypes the fast path reads, with their item sizes."""
OUT_ITEMSIZE: Final = {"F32": 4, "F16": 2}

# The converter drops these before naming (ModelBase.prepare_tensors).
_SKIPPED_SUFFIXES: Final = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")
# A decoder-only transformer's tensors as transformers names them for the supported architectures;
# anything else (adapters, vision towers, MoE experts, renamed prefixes) is left to the converter.
_ACCEPTED_NAME: Final = re.compile(
    r"(?:model\.embed_tokens|model\.norm|lm_head|model\.layers\.\d+\."
    r"(?:self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj|input_layernorm|post_attention_layernorm))"
    r"\.(?:weight|bias)"
)
_ACCEPTED_TYPES: Final = frozenset(
    {
        "TOKEN_EMBD",
        "OUTPUT_NORM",
        "OUTPUT",
        "ATTN_NORM",
        "ATTN_Q",
        "ATTN_K",
        "ATTN_V",
        "ATTN_OUT",
        "FFN_NORM",
        "FFN_GATE",
        "FFN_UP",
        "FFN_DOWN",
    }
)
# config.json keys that make the converter read a nested config (multimodal and composite models).
_NESTED_CONFIGS: Final = (
    "text_config",
    "llm_config",
    "lm_config",
    "thinker_config",
    "language_config",
    "lfm",
    "vision_config",
)


@dataclass(frozen=True)
class SourceTensor:
    """A tensor in a safetensors shard: where its bytes are."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    path: Path
    offset: int
    """Of its first byte in ``path``."""
    nbytes: int


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of the GGUF: its name, its source, its type, and whether its rows are regrouped."""

    name: str
    source: SourceTensor
    out_type: str
    """F16 or F32."""
    permute_heads: int | None
    """Regroup the rows per head as LlamaModel.permute does with this many heads; None: as they are."""

    @property
    def nbytes(self) -> int:
        return math.prod(self.source.shape) * OUT_ITEMSIZE[self.out_type]


class TensorNameMap(Protocol):
    """gguf-py's TensorNameMap (only what is used here)."""

    def get_type_and_name(
        self, key: str, try_suffixes: tuple[str, ...] = ()
    ) -> tuple[Any, str] | None: ...  # pragma: no cover - a protocol


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs from config.json."""

    architecture: str
    rule: ArchRule
    block_count: int
    head_count: int
    head_count_kv: int


def model_shape(config: Mapping[str, Any], outtype: str) -> ModelShape:
    """The supported architecture and head counts of ``config``; Unsupported says why not."""
    if outtype != "f16":
        raise Unsupported(f"the fast path writes f16 only, not {outtype}")
    architectures = config.get("architectures") or []
    architecture = architectures[0] if isinstance(architectures, list) and architectures else None
    rule = SUPPORTED.get(architecture) if isinstance(architecture, str) else None
    if rule is None or architecture is None:
        raise Unsupported(
            f"architecture {architecture!r} is not one the fast path handles ({', '.join(SUPPORTED)})"
        )
    if nested := [key for key in _NESTED_CONFIGS if key in config]:
        raise Unsupported(f"config.json has {', '.join(nested)} (a composite model)")
    if config.get("quantization_config"):
        raise Unsupported("the checkpoint is quantized (quantization_config)")
    if "draft_vocab_size" in config or "transformer_layer_config" in config:
        raise Unsupported("a speculative-decoding draft model (EAGLE-3)")
    if "llama3" in _rope_types(config):
        raise Unsupported("Llama 3 RoPE scaling (the converter computes a rope_freqs tensor)")
    if "n_heads" in config or "n_kv_heads" in config:
        raise Unsupported("config.json names its head counts n_heads/n_kv_heads")
    heads = _positive_int(config, "num_attention_heads")
    kv_heads = config.get("num_key_value_heads") or heads  # transformers' default
    if not isinstance(kv_heads, int) or kv_heads <= 0:
        raise Unsupported(f"num_key_value_heads {kv_heads!r} is not a positive integer")
    return ModelShape(architecture, rule, _positive_int(config, "num_hidden_layers"), heads, kv_heads)


def _positive_int(config: Mapping[str, Any], key: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Unsupported(f"config.json {key} is {value!r}, not a positive integer")
    return value


def _rope_types(config: Mapping[str, Any]) -> set[str]:
    """Every rope_type/type in rope_scaling and rope_parameters, nested per attention kind included."""
    found: set[str] = set()
    pending = [config.get("rope_scaling"), config.get("rope_parameters")]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            found.update(str(item[key]).lower() for key in ("rope_type", "type") if item.get(key))
            pending.extend(value for value in item.values() if isinstance(value, Mapping))
    return found


def index_weights(
    model_dir: Path, read_header: Callable[[Path], Mapping[str, SourceTensor]]
) -> list[SourceTensor]:
    """Every tensor of the model's shards in the converter's order (``ModelBase.index_tensors``).

    Shards: those ``model.safetensors.index.json`` names, sorted, else the sorted
    ``model*.safetensors``; tensors by name within a shard. ``read_header`` lists one shard's.
    """
    index = model_dir / "model.safetensors.index.json"
    listed: set[str] | None = None
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
        if not isinstance(weight_map, dict):
            raise Unsupported(f"{index.name} has no weight_map")
        files = sorted(set(weight_map.values()))
        listed = set(weight_map)
    else:
        files = sorted(p.name for p in model_dir.iterdir() if p.name.startswith("model"))
        files = [name for name in files if name.endswith(".safetensors")]
    if not files:
        raise Unsupported("no model*.safetensors weights")
    tensors: dict[str, SourceTensor] = {}
    for file in files:
        for name, tensor in sorted(read_header(model_dir / file).items()):
            if name in tensors:
                raise Unsupported(f"tensor {name} is in two shards")
            tensors[name] = tensor
    if listed is not None and listed != set(tensors):
        raise Unsupported(f"{index.name} and the shards list different tensors")
    return list(tensors.values())


def plan_tensors(
    sources: Iterable[SourceTensor], shape: ModelShape, tensor_map: TensorNameMap
) -> list[PlannedTensor]:
    """The GGUF's tensors, in the order the converter writes them; Unsupported for anything else."""
    planned = []
    for source in sources:
        if source.name.endswith(_SKIPPED_SUFFIXES):
            continue
        if not _ACCEPTED_NAME.fullmatch(source.name):
            raise Unsupported(f"tensor {source.name} is not one of a plain decoder's")
        if source.dtype not in SOURCE_DTYPES:
            raise Unsupported(f"tensor {source.name} is {source.dtype} (the fast path reads F32, F16, BF16)")
        if not source.shape or 0 in source.shape:
            raise Unsupported(f"tensor {source.name} has shape {list(source.shape)}")
        if source.nbytes != math.prod(source.shape) * SOURCE_DTYPES[source.dtype]:
            raise Unsupported(f"tensor {source.name}: {source.nbytes} bytes do not match its shape")
        mapped = tensor_map.get_type_and_name(source.name, try_suffixes=(".weight", ".bias"))
        if mapped is None or getattr(mapped[0], "name", None) not in _ACCEPTED_TYPES:
            raise Unsupported(f"tensor {source.name} maps to {mapped and mapped[1]!r} in gguf-py")
        name = mapped[1]
        planned.append(PlannedTensor(name, source, _out_type(name, source.shape), _heads(source, shape)))
    if not planned:
        raise Unsupported("no tensors")
    return planned


def _out_type(gguf_name: str, shape: tuple[int, ...]) -> str:
    # ModelBase.prepare_tensors: 1-D and norms stay f32, and so does anything that is not a weight.
    if len(shape) <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight"):
        return "F32"
    return "F16"


def _heads(source: SourceTensor, shape: ModelShape) -> int | None:
    if not shape.rule.permute_qk:
        return None
    if source.name.endswith(("q_proj.weight", "q_proj.bias")):
        heads = shape.head_count
    elif source.name.endswith(("k_proj.weight", "k_proj.bias")):
        heads = shape.head_count_kv  # LlamaModel.permute(k, n_head, n_head_kv) uses n_head_kv
    else:
        return None
    if source.shape[0] % (2 * heads):
        raise Unsupported(f"tensor {source.name}: {source.shape[0]} rows do not split into {heads} heads")
    return heads
