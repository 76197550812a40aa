"""QLoRA (4-bit nf4 base, for real on this CPU with bitsandbytes) and full fine-tuning of the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge import exitcodes
from tuneforge.api.finetunejob import FineTuneJobSpec
from tuneforge.trainer.errors import InvalidSpec, UnsupportedHardware
from tuneforge.trainer.model import artifact_name, prepare_model
from tuneforge.trainer.quantization import (
    bnb_config_kwargs,
    compute_dtype,
    quantization_config,
    require_bitsandbytes,
)

pytestmark = [
    # peft's PeftModel asks transformers a deprecated question.
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
Runner = Any
PROBE = "### Instruction:\nName a primary colour.\n\n### Response:\nRed."


def spec_of(**fields: Any) -> FineTuneJobSpec:
    base = {"model": {"source": "s3://models/tiny"}, "dataset": {"source": "s3://data/d"}}
    return FineTuneJobSpec.model_validate({**base, "output": {"uri": "s3://out/o"}, **fields})


def probe_loss(model: Any, tokenizer: Any) -> float:
    batch = tokenizer(PROBE, return_tensors="pt")
    with torch.no_grad():
        return float(model(**batch, labels=batch["input_ids"]).loss)


# --- QLoRA -----------------------------------------------------------------------------


def test_qlora_config_is_nf4_double_quantized_computing_in_the_training_precision() -> None:
    assert bnb_config_kwargs("fp32") == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": "float32",
    }
    assert compute_dtype("bf16") == "bfloat16" and compute_dtype("fp16") == "float16"
    config = quantization_config("bf16")
    assert config.load_in_4bit and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'auto'"):
        compute_dtype("auto")


def test_qlora_without_bitsandbytes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    with pytest.raises(UnsupportedHardware, match="spec.method qlora needs the bitsandbytes package"):
        require_bitsandbytes()


def test_qlora_loads_the_base_in_4_bits_and_lists_its_modules_for_a_wrong_target(tiny_model: Path) -> None:
    import bitsandbytes as bnb

    prepared = prepare_model(spec_of(method="qlora"), tiny_model, precision="fp32", attn_implementation=None)
    q_proj = prepared.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    assert q_proj.weight.dtype == torch.uint8 and q_proj.weight.quant_state.quant_type == "nf4"
    assert prepared.model.is_loaded_in_4bit
    assert prepared.peft_config is not None and prepared.peft_config.target_modules == "all-linear"

    wrong = spec_of(method="qlora", hyperparameters={"targetModules": ["q_proj", "c_attn"]})
    with pytest.raises(InvalidSpec) as caught:
        prepare_model(wrong, tiny_model, precision="fp32", attn_implementation=None)
    assert caught.value.message == (
        "spec.hyperparameters.targetModules: 'c_attn' is not a linear module of this model; it has: "
        "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj (or use all-linear)"
    )


@pytest.mark.slow
def test_qlora_run_trains_an_adapter_on_a_4bit_base(run_trainer: Runner, tiny_model: Path) -> None:
    import bitsandbytes as bnb

    run = run_trainer(
        EXAMPLES / "alpaca-sample.jsonl",
        method="qlora",
        hyperparameters={"maxSteps": 6, "loggingSteps": 1, "maxSeqLength": 64, "batchSize": 2},
    )
    assert run.exit_code == exitcodes.OK, run.termination
    adapter = run.output / "adapter"
    assert run.termination["artifacts"]["adapter"] == adapter.as_uri()
    assert (
        "QLoRA: base model in 4 bits (nf4, double quantization), computing in fp32"
        in run.run_file("train.log").read_text()
    )
    losses = run.losses
    assert min(losses[-3:]) < losses[0] - 0.3, losses

    # The adapter is a plain LoRA adapter; loaded onto the 4-bit base, the base stays 4-bit and the
    # trained adapter moves the outputs.
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 16 and "model.layers.0.self_attn.q_proj" in config["target_modules"]
    assert all(
        w.abs().sum() > 0
        for n, w in load_file(adapter / "adapter_model.safetensors").items()
        if "lora_B" in n
    )
    base = AutoModelForCausalLM.from_pretrained(tiny_model, quantization_config=quantization_config("fp32"))
    tuned = PeftModel.from_pretrained(base, adapter)
    q_proj = tuned.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit) and q_proj.base_layer.weight.dtype == torch.uint8
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    with tuned.disable_adapter():
        before = probe_loss(tuned, tokenizer)
    assert probe_loss(tuned, tokenizer) < before


# --- full fine-tuning ------------------------------------------------------------------


def test_the_artifact_is_the_adapter_or_for_full_fine_tuning_the_model() -> None:
    assert artifact_name(spec_of(method="full")) == "model"
    assert artifact_name(spec_of(method="qlora")) == artifact_name(spec_of()) == "adapter"


@pytest.mark.slow
def test_full_run_changes_every_layer_and_uploads_a_loadable_model(
    run_trainer: Runner, tiny_model: Path
) -> None:
    run = run_trainer(
        EXAMPLES / "alpaca-sample.jsonl",
        method="full",
        hyperparameters={"maxSteps": 6, "loggingSteps": 1, "maxSeqLength": 64, "learningRate": 1e-3},
    )
    assert run.exit_code == exitcodes.OK, run.termination
    model_uri = (run.output / "model").as_uri()
    assert run.termination["artifacts"] == {"model": model_uri, "runRecord": (run.output / "run").as_uri()}
    message = run.termination["message"]
    assert message.startswith(f"trained 6 steps on 300 samples; full model at {model_uri};")
    assert not (run.output / "adapter").exists()
    local = json.loads((run.workdir / "status.json").read_text())
    assert local["artifacts"]["model"] == model_uri and "adapter" not in local["artifacts"]
    losses = run.losses
    assert min(losses[-3:]) < losses[0] - 0.3, losses

    # A whole model with its tokenizer: it loads on its own, every layer moved, and it fits the data better.
    saved = run.output / "model"
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer.model", "_MANIFEST.json"} <= {
        p.name for p in saved.iterdir()
    }
    assert not (saved / "adapter_config.json").exists()
    before, after = load_file(tiny_model / "model.safetensors"), load_file(saved / "model.safetensors")
    assert before.keys() == after.keys()
    unchanged = [name for name in before if torch.equal(before[name], after[name])]
    assert unchanged == [], unchanged
    tuned = AutoModelForCausalLM.from_pretrained(saved)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(saved)
    assert probe_loss(tuned, tokenizer) < probe_loss(base, tokenizer)
    assert json.loads(run.run_file("config.json").read_text())["spec"]["method"] == "full"


def test_a_full_model_is_saved_in_its_base_models_dtype(tiny_model: Path, tmp_path: Path) -> None:
    from tuneforge.trainer.model import load_tokenizer, save_artifact

    base = tmp_path / "bf16-base"
    base.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        (base / name).write_bytes((tiny_model / name).read_bytes())
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    trained = AutoModelForCausalLM.from_pretrained(tiny_model)  # fp32 master weights, as trained
    save_artifact(spec_of(method="full"), trained, load_tokenizer(base), base, tmp_path / "model")
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}
    assert (tmp_path / "model" / "tokenizer.model").read_bytes() == (
        tiny_model / "tokenizer.model"
    ).read_bytes()
