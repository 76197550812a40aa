"""spec.hyperparameters and spec.evaluation onto peft LoraConfig / trl SFTConfig; hardware refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from peft import LoraConfig

from tuneforge.api.finetunejob import Evaluation, Hyperparameters, Precision
from tuneforge.trainer.errors import InvalidSpec, UnsupportedHardware
from tuneforge.trainer.hyperparams import (
    attn_implementation,
    evaluation_kwargs,
    lora_kwargs,
    resolve_precision,
    resolve_target_modules,
    sft_kwargs,
)

LLAMA_LINEAR = ["down_proj", "gate_proj", "k_proj", "lm_head", "o_proj", "q_proj", "up_proj", "v_proj"]


def kwargs(hp: Hyperparameters, evaluation: Evaluation | None = None, **extra: object) -> dict[str, object]:
    options: dict[str, object] = {
        "precision": "fp32",
        "cuda": False,
        "has_eval": False,
        "output_dir": Path("/w"),
    }
    options.update(extra)
    return sft_kwargs(hp, evaluation, **options)  # type: ignore[arg-type]


def test_every_hyperparameter_reaches_sft_config() -> None:
    hp = Hyperparameters.model_validate(
        {
            "learningRate": 1e-3,
            "epochs": 2.5,
            "maxSteps": 7,
            "batchSize": 3,
            "gradientAccumulationSteps": 2,
            "maxSeqLength": 256,
            "packing": True,
            "lrScheduler": "cosine",
            "warmupSteps": 4,
            "weightDecay": 0.01,
            "seed": 123,
            "gradientCheckpointing": True,
            "loggingSteps": 2,
        }
    )
    got = kwargs(hp)
    expected = {
        "learning_rate": 1e-3,
        "num_train_epochs": 2.5,
        "max_steps": 7,
        "per_device_train_batch_size": 3,
        "per_device_eval_batch_size": 3,
        "gradient_accumulation_steps": 2,
        "max_length": 256,
        "packing": True,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 4.0,
        "weight_decay": 0.01,
        "seed": 123,
        "data_seed": 123,
        "activation_checkpointing": True,
        "logging_steps": 2,
        "bf16": False,
        "fp16": False,
        "use_cpu": True,
        "report_to": "none",
        "disable_tqdm": True,
        "eval_strategy": "no",
    }
    assert {k: got[k] for k in expected} == expected


def test_the_mapping_is_accepted_by_sft_config(tmp_path: Path) -> None:
    from trl.trainer.sft_config import SFTConfig

    hp = Hyperparameters.model_validate({"warmupRatio": 0.1, "lrScheduler": "constant_with_warmup"})
    config = SFTConfig(**kwargs(hp, output_dir=tmp_path))
    assert config.activation_checkpointing is False  # trl's default is True: the spec's False must win
    assert config.bf16 is False and config.fp16 is False
    assert config.max_steps == -1 and config.num_train_epochs == 1.0
    assert config.get_warmup_steps(100) == 10
    assert config.lr_scheduler_type == "constant_with_warmup"
    assert config.report_to == []


def test_warmup_ratio_one_stays_a_ratio() -> None:
    hp = Hyperparameters.model_validate({"warmupRatio": 1.0})
    steps = kwargs(hp)["warmup_steps"]
    assert isinstance(steps, float) and 0.99 < steps < 1.0
    assert kwargs(Hyperparameters())["warmup_steps"] == 0.0


def test_lora_settings_reach_lora_config() -> None:
    hp = Hyperparameters.model_validate({"loraRank": 8, "loraAlpha": 16, "loraDropout": 0.1})
    config = LoraConfig(**lora_kwargs(hp, ["q_proj", "v_proj"]))
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 16, 0.1)
    assert config.target_modules == {"q_proj", "v_proj"}
    assert config.task_type == "CAUSAL_LM"


def test_target_modules_all_linear_or_checked_names() -> None:
    assert resolve_target_modules(["all-linear"], LLAMA_LINEAR) == "all-linear"
    assert resolve_target_modules(["q_proj", "v_proj"], LLAMA_LINEAR) == ["q_proj", "v_proj"]


def test_unknown_target_module_lists_the_modules_the_model_has() -> None:
    with pytest.raises(InvalidSpec) as caught:
        resolve_target_modules(["q_proj", "qkv_proj"], LLAMA_LINEAR)
    assert caught.value.message == (
        "spec.hyperparameters.targetModules: 'qkv_proj' is not a linear module of this model; it has: "
        "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj (or use all-linear)"
    )
    with pytest.raises(InvalidSpec, match="cannot be combined"):
        resolve_target_modules(["all-linear", "q_proj"], LLAMA_LINEAR)


@pytest.mark.parametrize(
    ("requested", "cuda", "bf16", "expected"),
    [
        (Precision.auto, False, False, "fp32"),
        (Precision.auto, True, True, "bf16"),
        (Precision.auto, True, False, "fp16"),
        (Precision.fp32, False, False, "fp32"),
        (Precision.fp32, True, True, "fp32"),
        (Precision.bf16, True, True, "bf16"),
        (Precision.fp16, True, True, "fp16"),
    ],
)
def test_precision(requested: Precision, cuda: bool, bf16: bool, expected: str) -> None:
    assert resolve_precision(requested, cuda=cuda, bf16_supported=bf16) == expected


@pytest.mark.parametrize("requested", [Precision.bf16, Precision.fp16])
def test_half_precision_on_cpu_is_refused(requested: Precision) -> None:
    with pytest.raises(UnsupportedHardware, match=f"precision {requested.value} needs a CUDA GPU"):
        resolve_precision(requested, cuda=False, bf16_supported=False)


def test_bf16_on_an_old_gpu_is_refused() -> None:
    with pytest.raises(UnsupportedHardware, match="not supported by this GPU"):
        resolve_precision(Precision.bf16, cuda=True, bf16_supported=False)


def test_precision_flags_reach_the_config() -> None:
    got = kwargs(Hyperparameters(), precision="bf16", cuda=True)
    assert (got["bf16"], got["fp16"], got["use_cpu"]) == (True, False, False)


def test_flash_attention() -> None:
    assert attn_implementation(False, cuda=False, flash_attn_installed=False) is None
    assert attn_implementation(True, cuda=True, flash_attn_installed=True) == "flash_attention_2"
    with pytest.raises(UnsupportedHardware, match="flashAttention needs a CUDA GPU"):
        attn_implementation(True, cuda=False, flash_attn_installed=True)
    with pytest.raises(UnsupportedHardware, match="needs the flash-attn package"):
        attn_implementation(True, cuda=True, flash_attn_installed=False)


def test_evaluation_strategy() -> None:
    assert evaluation_kwargs(None, has_eval=False) == {"eval_strategy": "no"}
    assert evaluation_kwargs(None, has_eval=True) == {"eval_strategy": "epoch"}
    steps = Evaluation.model_validate({"strategy": "steps", "steps": 5})
    assert evaluation_kwargs(steps, has_eval=True) == {"eval_strategy": "steps", "eval_steps": 5}
    assert evaluation_kwargs(Evaluation.model_validate({"strategy": "no"}), has_eval=True) == {
        "eval_strategy": "no"
    }
