"""Which base tensors an adapter changes, and how: planned from names and shapes alone.

An adapter saved by peft names its tensors after the modules of the base
model, under the prefix ``base_model.model.``:

- ``M.lora_A.weight`` / ``M.lora_B.weight`` (and ``M.lora_B.bias`` with
  ``lora_bias``): LoRA on the linear layer M, folded into ``M.weight``
  (and ``M.bias``);
- ``M.lora_embedding_A`` / ``M.lora_embedding_B``: LoRA on the embedding M;
- ``M.base_layer.weight``: a whole embedding saved beside its LoRA
  (``save_embedding_layers``), which replaces ``M.weight``;
- ``K`` for a module listed in ``modules_to_save``: a whole tensor that
  replaces the base's ``K``.

Everything is checked before a byte is written: each tensor belongs to one
of those kinds, each module is one the config targets, each rank is the
config's r, and each update has the shape of the base weight it lands in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from tuneforge.exporter.adapter_config import LoraAdapterConfig
from tuneforge.exporter.errors import AdapterInvalid, NotSupportedYet

PREFIX: Final = "base_model.model."
Shape = tuple[int, ...]


@dataclass(frozen=True)
class LoraUpdate:
    """``weight += scaling · (B @ A)`` (transposed for embeddings and fan_in_fan_out layers)."""

    module: str
    kind: Literal["linear", "embedding"]
    a: str
    """Adapter tensor names."""
    b: str
    scaling: float
    transpose: bool


@dataclass(frozen=True)
class BiasUpdate:
    """``bias += scaling · lora_B.bias`` (``lora_bias=True``)."""

    module: str
    b_bias: str
    scaling: float


@dataclass(frozen=True)
class Replacement:
    """The base tensor is replaced by the adapter's copy (modules_to_save, saved embeddings)."""

    source: str


Op = LoraUpdate | BiasUpdate | Replacement


@dataclass
class MergePlan:
    """Base tensor name -> the operations that produce its merged value, in order."""

    ops: dict[str, list[Op]] = field(default_factory=dict)

    def add(self, base_key: str, op: Op) -> None:
        self.ops.setdefault(base_key, []).append(op)

    @property
    def lora_modules(self) -> int:
        return sum(1 for ops in self.ops.values() for op in ops if isinstance(op, LoraUpdate))

    @property
    def replacements(self) -> int:
        return sum(1 for ops in self.ops.values() for op in ops if isinstance(op, Replacement))


@dataclass
class _Module:
    a: str | None = None
    b: str | None = None
    b_bias: str | None = None
    kind: Literal["linear", "embedding"] = "linear"


def plan_merge(
    config: LoraAdapterConfig,
    adapter_shapes: Mapping[str, Shape],
    base_shapes: Mapping[str, Shape],
    *,
    tied_keys: Iterable[str] = (),
) -> MergePlan:
    """The plan to merge an adapter (its tensors' names and shapes) into a base (likewise).

    ``tied_keys`` are base weights shared with another (tied embeddings): a
    change to them is refused, as the checkpoint stores them once.
    Raises AdapterInvalid / NotSupportedYet naming the offending tensor.
    """
    modules: dict[str, _Module] = {}
    plan = MergePlan()
    for name in sorted(adapter_shapes):
        key = name.removeprefix(PREFIX)
        module, part = _split(key)
        if part is None:
            plan.add(_replaced_key(config, key, base_shapes), Replacement(name))
            continue
        entry = modules.setdefault(module, _Module())
        if part == "lora_A.weight":
            entry.a = name
        elif part == "lora_B.weight":
            entry.b = name
        elif part == "lora_B.bias":
            entry.b_bias = name
        elif part == "lora_embedding_A":
            entry.a, entry.kind = name, "embedding"
        elif part == "lora_embedding_B":
            entry.b, entry.kind = name, "embedding"
        elif part == "base_layer.weight":
            plan.add(_base_key(f"{module}.weight", name, base_shapes), Replacement(name))
    tied = set(tied_keys)
    for module, entry in sorted(modules.items()):
        if entry.a is None and entry.b is None:
            continue  # only a saved base layer
        _plan_lora(plan, config, module, entry, adapter_shapes, base_shapes, tied)
    for base_key, ops in plan.ops.items():
        for op in ops:
            if isinstance(op, Replacement) and adapter_shapes[op.source] != base_shapes[base_key]:
                raise AdapterInvalid(
                    f"the adapter's {op.source} has shape {list(adapter_shapes[op.source])} but the base "
                    f"model's {base_key} has {list(base_shapes[base_key])}: was the vocabulary resized "
                    "during training? The adapter does not fit this base model"
                )
    return plan


def _split(key: str) -> tuple[str, str | None]:
    """``(module, LoRA part)``, or ``(key, None)`` for a whole tensor."""
    for part in (
        "lora_A.weight",
        "lora_B.weight",
        "lora_B.bias",
        "lora_embedding_A",
        "lora_embedding_B",
        "base_layer.weight",
    ):
        if key.endswith(f".{part}"):
            return key[: -len(part) - 1], part
    if ".lora_" in key or key.startswith("lora_"):
        raise AdapterInvalid(
            f"the adapter tensor {key!r} is a LoRA tensor of a kind this merge does not know "
            "(named adapters or a newer peft format); save the adapter with peft 0.21"
        )
    return key, None


def _replaced_key(config: LoraAdapterConfig, key: str, base_shapes: Mapping[str, Shape]) -> str:
    module = key.rpartition(".")[0]
    if not config.saves(module):
        raise AdapterInvalid(
            f"the adapter holds the whole tensor {key!r}, but its config's modules_to_save "
            f"({config.modules_to_save or []}) does not name {module!r}: adapter_config.json and the "
            "weights do not belong together"
        )
    return _base_key(key, key, base_shapes)


def _base_key(key: str, source: str, base_shapes: Mapping[str, Shape]) -> str:
    if key not in base_shapes:
        raise AdapterInvalid(
            f"the adapter's {source} belongs to {key!r}, which the base model does not have: "
            "is this the adapter's base model?"
        )
    return key


def _plan_lora(
    plan: MergePlan,
    config: LoraAdapterConfig,
    module: str,
    entry: _Module,
    adapter_shapes: Mapping[str, Shape],
    base_shapes: Mapping[str, Shape],
    tied: set[str],
) -> None:
    if entry.a is None or entry.b is None:
        have, missing = ("B", "A") if entry.a is None else ("A", "B")
        raise AdapterInvalid(f"the adapter has LoRA {have} for {module!r} but no LoRA {missing}")
    if not config.targets(module):
        raise AdapterInvalid(
            f"the adapter holds LoRA weights for {module!r}, which its config's target_modules "
            f"({config.target_modules}) does not name: adapter_config.json and the weights do not "
            "belong together"
        )
    weight = f"{module}.weight"
    if weight in tied:
        raise NotSupportedYet(
            f"LoRA on {module!r}, whose weight the base model ties to another (tie_word_embeddings): "
            "the merge would change both; merge this adapter with peft"
        )
    base_key = _base_key(weight, entry.a, base_shapes)
    a_shape, b_shape, target = adapter_shapes[entry.a], adapter_shapes[entry.b], base_shapes[base_key]
    if len(a_shape) != 2 or len(b_shape) != 2 or len(target) != 2:
        raise NotSupportedYet(
            f"LoRA on {module!r} is not on a linear or embedding layer (shapes A {list(a_shape)}, "
            f"B {list(b_shape)}, weight {list(target)}); only those can be merged"
        )
    rank = config.rank(module)
    # A is (r, fan_in) and B (fan_out, r), for linear layers and embeddings alike.
    rows_a, rows_b = a_shape[0], b_shape[1]
    if rows_a != rank or rows_b != rank:
        raise AdapterInvalid(
            f"the LoRA weights of {module!r} have rank {rows_a}/{rows_b} but adapter_config.json "
            f"says r={rank}"
        )
    transpose = entry.kind == "embedding" or config.fan_in_fan_out
    update = (b_shape[0], a_shape[1])
    if transpose:
        update = (update[1], update[0])
    if update != target:
        raise AdapterInvalid(
            f"the LoRA update of {module!r} has shape {list(update)} but the base weight {base_key} has "
            f"{list(target)}: this adapter was trained on a different base model"
        )
    scaling = config.scaling(module)
    plan.add(base_key, LoraUpdate(module, entry.kind, entry.a, entry.b, scaling, transpose))
    if entry.b_bias is not None:
        bias = f"{module}.bias"
        if bias not in base_shapes:
            raise AdapterInvalid(f"the adapter has a LoRA bias for {module!r}, whose base layer has no bias")
        plan.add(bias, BiasUpdate(module, entry.b_bias, scaling))
