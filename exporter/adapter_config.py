"""A LoRA adapter's ``adapter_config.json``: what the merge honours, and what it refuses.

Read without importing peft (a streaming merge must stay small), with
peft's own rules (peft 0.21): scaling is ``lora_alpha / r``, or
``lora_alpha / sqrt(r)`` with rsLoRA; ``rank_pattern`` / ``alpha_pattern``
override r and alpha for the modules whose name matches
``(.*\\.)?(<pattern>)$``; ``fan_in_fan_out`` transposes the update (GPT-2's
Conv1D); ``target_modules`` (a list of name suffixes, a regular expression,
or ``all-linear``) and ``exclude_modules`` say which modules may carry LoRA.

LoRA variants whose merge is not plain ``W + B·A·scaling`` (DoRA, aLoRA,
MiCA, ...) and trainable-token adapters are refused by name, never merged
wrongly.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneforge.exporter.errors import AdapterInvalid, NotSupportedYet

CONFIG_NAME: Final = "adapter_config.json"
ALL_LINEAR: Final = "all-linear"

# peft 0.21's LoRA variants (LoraConfig fields marked is_lora_variant, and
# init_lora_weights="mica"), plus adapters that are not a per-weight update:
# field -> what to tell the user. tests/exporter pins this list against peft.
REFUSED: Final[dict[str, str]] = {
    "use_dora": "DoRA",
    "velora_config": "VeLoRA",
    "alora_invocation_tokens": "activated LoRA (aLoRA), which cannot be merged",
    "monteclora_config": "MonteCLoRA",
    "use_bdlora": "block-diagonal LoRA",
    "arrow_config": "Arrow routing",
    "kasa_config": "KaSA",
    "trainable_token_indices": "trainable tokens",
    "target_parameters": "LoRA on nn.Parameter targets (MoE experts)",
    "layer_replication": "layer replication",
    "use_qalora": "QA-LoRA",
}
REFUSED_INIT: Final = {"mica": "MiCA"}


class LoraAdapterConfig(BaseModel):
    """The fields of a peft LoraConfig the merge reads; the rest are ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    peft_type: str = "LORA"
    r: int = Field(8, gt=0)
    lora_alpha: float = 8
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    lora_bias: bool = False
    target_modules: list[str] | str | None = None
    exclude_modules: list[str] | str | None = None
    modules_to_save: list[str] | None = None
    rank_pattern: dict[str, int] = Field(default_factory=dict)
    alpha_pattern: dict[str, float] = Field(default_factory=dict)
    base_model_name_or_path: str | None = None
    init_lora_weights: bool | str = True

    def rank(self, module: str) -> int:
        """r for the module named ``module`` (e.g. ``model.layers.0.self_attn.q_proj``)."""
        key = _pattern_key(self.rank_pattern, module)
        return self.rank_pattern[key] if key is not None else self.r

    def alpha(self, module: str) -> float:
        key = _pattern_key(self.alpha_pattern, module)
        return self.alpha_pattern[key] if key is not None else self.lora_alpha

    def scaling(self, module: str) -> float:
        """The factor of B·A for ``module``, computed as peft computes it (same float operations)."""
        r, alpha = self.rank(module), self.alpha(module)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r

    def targets(self, module: str) -> bool:
        """Whether ``target_modules`` (less ``exclude_modules``) lets ``module`` carry LoRA weights."""
        if _matches(self.exclude_modules, module):
            return False
        if self.target_modules is None:
            return True  # peft filled in its per-architecture default; the weights say which
        if self.target_modules == ALL_LINEAR:
            return True
        return _matches(self.target_modules, module)

    def saves(self, module: str) -> bool:
        """Whether ``module`` is one of ``modules_to_save`` (its full weights travel in the adapter)."""
        return any(re.match(rf"(^|.*\.){name}($|\..*)", module) for name in self.modules_to_save or ())


def _pattern_key(patterns: dict[str, Any], module: str) -> str | None:
    # peft.utils.other.get_pattern_key: the first pattern that matches the end of the name.
    for key in patterns:
        if re.match(rf"(.*\.)?({key})$", module):
            return key
    return None


def _matches(spec: list[str] | str | None, module: str) -> bool:
    if not spec:
        return False
    if isinstance(spec, str):
        return re.fullmatch(spec, module) is not None
    return module in spec or any(module.endswith(f".{name}") for name in spec)


def load_adapter_config(adapter_dir: Path) -> LoraAdapterConfig:
    """The adapter's config, or AdapterInvalid / NotSupportedYet saying what is wrong with it."""
    path = Path(adapter_dir) / CONFIG_NAME
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdapterInvalid(
            f"{adapter_dir} has no {CONFIG_NAME}: the adapter source must be a peft adapter folder "
            "(adapter_config.json and adapter_model.safetensors), as tuneforge train writes it"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterInvalid(f"{path}: cannot read it as JSON: {err}") from None
    if not isinstance(raw, dict):
        raise AdapterInvalid(f"{path}: expected a JSON object, got {type(raw).__name__}")
    check_mergeable(raw, path)
    try:
        return LoraAdapterConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AdapterInvalid(f"{path}: {where}: {first['msg']}") from None


def check_mergeable(raw: dict[str, Any], path: Path) -> None:
    """Refuses adapters that are not plain LoRA, naming the field that makes them so."""
    peft_type = str(raw.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise NotSupportedYet(f"{path}: peft_type {peft_type} cannot be merged; only LORA adapters can")
    for field, what in REFUSED.items():
        if raw.get(field):
            raise NotSupportedYet(
                f"{path}: {field} is set ({what}); the streaming merge folds plain LoRA only — "
                "merge this adapter with peft, or retrain without it"
            )
    init = raw.get("init_lora_weights")
    if isinstance(init, str) and init in REFUSED_INIT:
        raise NotSupportedYet(
            f"{path}: init_lora_weights={init!r} ({REFUSED_INIT[init]}) cannot be merged yet"
        )
