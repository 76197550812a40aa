"""The streaming merge gives peft's merge_and_unload, bit for bit, and refuses what it cannot merge."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tuneforge.exporter.adapter_config import REFUSED, REFUSED_INIT, LoraAdapterConfig
from tuneforge.exporter.errors import AdapterInvalid, ModelInvalid, NotSupportedYet
from tuneforge.exporter.lora_plan import plan_merge
from tuneforge.exporter.merge import merge_adapter

# peft, saving and loading adapters for the comparisons, warns about things these tests do on purpose
# (an embedding in target_modules) or cannot change (a deprecated transformers property it reads).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Setting `save_embedding_layers` to `True`:UserWarning"),
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

RICH_LORA = {
    "r": 4,
    "lora_alpha": 8,
    "use_rslora": True,
    "target_modules": ["q_proj", "v_proj", "down_proj", "embed_tokens"],
    "rank_pattern": {"v_proj": 2},
    "alpha_pattern": {"down_proj": 3},
    "modules_to_save": ["lm_head"],
}


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def differing_elements(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> int:
    assert set(a) == set(b)
    total = 0
    for name, left in a.items():
        right = b[name]
        assert left.dtype == right.dtype and left.shape == right.shape, name
        total += int((left.reshape(-1).view(torch.uint8) != right.reshape(-1).view(torch.uint8)).sum())
    return total


def peft_merge(base: Path, adapter: Path, out: Path, dtype: torch.dtype | None = None) -> Path:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, **({"dtype": dtype} if dtype else {}))
    PeftModel.from_pretrained(model, adapter).merge_and_unload().save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def rich_adapter(tiny_model: Path, make_lora: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(tiny_model, tmp_path_factory.mktemp("rich") / "adapter", **RICH_LORA)


@pytest.fixture(scope="module")
def bf16_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("bf16") / "model"
    AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "chat_template.jinja"):
        shutil.copy(tiny_model / name, out / name)
    return out


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_merge_equals_peft_bit_for_bit(
    precision: str, tiny_model: Path, bf16_model: Path, rich_adapter: Path, tmp_path: Path
) -> None:
    """rsLoRA, rank/alpha patterns, LoRA on the embedding, modules_to_save and a saved embedding layer."""
    base = tiny_model if precision == "fp32" else bf16_model
    dtype = torch.bfloat16 if precision == "bf16" else None
    expected = tensors(peft_merge(base, rich_adapter, tmp_path / "peft", dtype))
    result = merge_adapter(base, rich_adapter, tmp_path / "ours")
    ours = tensors(tmp_path / "ours")
    assert differing_elements(ours, expected) == 0
    assert result.lora_modules == 2 * 3 + 1  # q, v, down in 2 layers, and the embedding
    assert result.replaced == 2  # lm_head (modules_to_save), embed_tokens (saved with its LoRA)
    original = tensors(base)
    changed = [name for name in ours if not torch.equal(ours[name], original[name])]
    assert "model.layers.1.mlp.down_proj.weight" in changed and "lm_head.weight" in changed
    assert all(t.dtype == original[n].dtype for n, t in ours.items())


def test_dtype_casts_as_loading_in_that_dtype_does(
    tiny_model: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    expected = tensors(peft_merge(tiny_model, tiny_adapter, tmp_path / "peft", torch.bfloat16))
    result = merge_adapter(tiny_model, tiny_adapter, tmp_path / "ours", dtype="bf16")
    assert differing_elements(tensors(tmp_path / "ours"), expected) == 0
    assert result.dtype == "bfloat16"
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["dtype"] == "bfloat16"


def test_sharded_model_keeps_its_shards_and_index(
    tiny_model: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(tiny_model).save_pretrained(base, max_shard_size="3MB")
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "chat_template.jinja"):
        shutil.copy(tiny_model / name, base / name)
    shards = sorted(p.name for p in base.glob("*.safetensors"))
    assert len(shards) >= 3
    result = merge_adapter(base, tiny_adapter, tmp_path / "ours")
    out = tmp_path / "ours"
    assert list(result.shards) == shards == sorted(p.name for p in out.glob("*.safetensors"))
    index = json.loads((out / "model.safetensors.index.json").read_text())
    merged = tensors(out)
    assert index["metadata"]["total_size"] == result.bytes == sum(t.nbytes for t in merged.values())
    assert (
        index["weight_map"] == json.loads((base / "model.safetensors.index.json").read_text())["weight_map"]
    )
    expected = tensors(peft_merge(base, tiny_adapter, tmp_path / "peft"))
    assert differing_elements(merged, expected) == 0
    # A model folder transformers and a tokenizer load, which peft's save is not (it writes no tokenizer).
    assert not (tmp_path / "peft" / "tokenizer.json").exists()
    AutoModelForCausalLM.from_pretrained(out)
    assert (
        AutoTokenizer.from_pretrained(out)("hello").input_ids
        == AutoTokenizer.from_pretrained(tiny_model)("hello").input_ids
    )
    assert {"config.json", "generation_config.json", "tokenizer.model", "chat_template.jinja"} <= set(
        result.side_files
    )


# peft 0.21 mistakes lora_B.bias (1-D by nature) for an ungathered ZeRO-3 shard when saving.
@pytest.mark.filterwarnings("ignore:Adapter 'default'.*invalid shape:peft.utils.warning.PeftWarning")
def test_fan_in_fan_out_and_lora_bias_on_gpt2_conv1d(make_lora: Any, tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    base = tmp_path / "gpt2"
    torch.manual_seed(0)
    config = GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=128, n_positions=32)
    GPT2LMHeadModel(config).save_pretrained(base)
    adapter = make_lora(
        base, tmp_path / "adapter", target_modules=["c_attn", "c_proj"], fan_in_fan_out=True, lora_bias=True
    )
    result = merge_adapter(base, adapter, tmp_path / "ours")
    expected = tensors(peft_merge(base, adapter, tmp_path / "peft"))
    assert result.lora_modules == 2 * 3  # attn.c_attn, attn.c_proj, mlp.c_proj per layer
    assert differing_elements(tensors(tmp_path / "ours"), expected) == 0


def test_adapter_tokenizer_files_win_over_the_base(
    tiny_model: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    (adapter / "chat_template.jinja").write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    merge_adapter(tiny_model, adapter, tmp_path / "ours")
    assert (tmp_path / "ours" / "chat_template.jinja").read_text() == "{{ messages[0]['content'] }}"
    assert not (tmp_path / "ours" / "adapter_config.json").exists()


def _edit_config(adapter: Path, **changes: Any) -> None:
    path = adapter / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"use_dora": True}, NotSupportedYet, "use_dora is set (DoRA)"),
        ({"init_lora_weights": "mica"}, NotSupportedYet, "MiCA"),
        ({"peft_type": "IA3"}, NotSupportedYet, "peft_type IA3"),
        ({"r": 8}, AdapterInvalid, "rank 4/4 but adapter_config.json says r=8"),
        ({"target_modules": ["k_proj"]}, AdapterInvalid, "which its config's target_modules (['k_proj'])"),
    ],
)
def test_adapters_it_cannot_merge_are_refused_before_writing(
    changes: dict[str, Any],
    error: type[Exception],
    words: str,
    tiny_model: Path,
    tiny_adapter: Path,
    tmp_path: Path,
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    _edit_config(adapter, **changes)
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("from before")
    with pytest.raises(error, match=None) as caught:
        merge_adapter(tiny_model, adapter, out)
    assert words in str(caught.value)
    assert (out / "kept.txt").read_text() == "from before"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_adapter_of_another_model_does_not_fit(tiny_model: Path, make_lora: Any, tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    other = tmp_path / "other"
    LlamaForCausalLM(
        LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, vocab_size=2048
        )
    ).save_pretrained(other)
    adapter = make_lora(other, tmp_path / "adapter")
    with pytest.raises(AdapterInvalid, match=r"has shape \[64, 64\] but the base weight .* has \[256, 256\]"):
        merge_adapter(tiny_model, adapter, tmp_path / "out")


def test_missing_or_unreadable_inputs_say_what_is_wrong(
    tiny_model: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    with pytest.raises(AdapterInvalid, match="has no adapter_config.json"):
        merge_adapter(tiny_model, tmp_path, tmp_path / "out")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    (legacy / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ModelInvalid, match=r"has no model.safetensors .*\(it has pytorch_model.bin\)"):
        merge_adapter(legacy, tiny_adapter, tmp_path / "out")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    with (broken / "model.safetensors").open("r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(ModelInvalid, match="weights are broken"):
        merge_adapter(broken, tiny_adapter, tmp_path / "out")


def test_lora_on_a_tied_embedding_is_refused() -> None:
    config = LoraAdapterConfig(r=2, target_modules=["lm_head"])
    shapes = {
        "base_model.model.lm_head.lora_A.weight": (2, 8),
        "base_model.model.lm_head.lora_B.weight": (16, 2),
    }
    with pytest.raises(NotSupportedYet, match="ties to another"):
        plan_merge(config, shapes, {"model.embed_tokens.weight": (16, 8)}, tied_keys={"lm_head.weight"})


def test_the_refused_list_covers_every_peft_lora_variant() -> None:
    """When peft adds a LoRA variant whose merge is not W + scaled B·A, this test names it."""
    from peft import LoraConfig

    fields = dataclasses.fields(LoraConfig)
    variants = {f.name for f in fields if f.metadata.get("is_lora_variant")}
    assert variants <= set(REFUSED)
    init = next(f for f in fields if f.name == "init_lora_weights")
    assert set(init.metadata.get("lora_variants", [])) <= set(REFUSED_INIT)
