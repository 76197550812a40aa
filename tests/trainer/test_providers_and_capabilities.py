"""Provider unsloth (refused clearly where it cannot run) and the capability lines of this task's fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tuneforge import exitcodes
from tuneforge.api.finetunejob import FineTuneJobSpec
from tuneforge.capabilities import SUPPORTED_CHOICES, unsupported_training
from tuneforge.trainer.errors import UnsupportedHardware
from tuneforge.trainer.providers import (
    ProviderUnavailable,
    check_provider,
    unsloth_installed,
    unsloth_load_kwargs,
    unsloth_peft_kwargs,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
Runner = Any


def spec_of(**fields: Any) -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate(
        {
            "model": {"source": "s3://models/tiny"},
            "dataset": {"source": "s3://data/d"},
            "output": {"uri": "s3://out/o"},
            **fields,
        }
    )


def test_methods_modalities_providers_and_tracking_are_supported() -> None:
    assert SUPPORTED_CHOICES["spec.method"][1] == ("lora", "qlora", "full")
    assert SUPPORTED_CHOICES["spec.modality"][1] == ("text", "vision")
    assert SUPPORTED_CHOICES["spec.provider"][1] == ("huggingface", "unsloth")
    tracked = {"wandb": {"project": "p", "apiKeySecretRef": {"name": "wb"}}}
    for fields in (
        {"method": "qlora"},
        {"method": "full"},
        {"modality": "vision"},
        {"provider": "unsloth", "method": "qlora"},
        {"tracking": tracked},
    ):
        assert unsupported_training(spec_of(**fields)) == [], fields


def test_combinations_not_built_are_named() -> None:
    assert unsupported_training(spec_of(modality="vision", provider="unsloth")) == [
        "spec.modality vision with spec.provider unsloth is not supported yet "
        "(use provider huggingface for vision-language models)"
    ]
    problems = unsupported_training(spec_of(modality="vision", trainer="dpo"))
    assert "spec.modality vision with spec.trainer dpo is not supported yet" in "; ".join(problems)


@pytest.mark.parametrize(
    ("cuda", "installed", "error", "fragments"),
    [
        (
            False,
            False,
            UnsupportedHardware,
            ["needs a CUDA GPU and the unsloth package", "provider huggingface"],
        ),
        (
            False,
            True,
            UnsupportedHardware,
            ["needs a CUDA GPU and this machine has none", "spec.resources.gpus"],
        ),
        (
            True,
            False,
            ProviderUnavailable,
            ["the trainer image has no unsloth package", "pip install unsloth"],
        ),
    ],
)
def test_unsloth_is_refused_where_it_cannot_run(
    cuda: bool, installed: bool, error: type[Exception], fragments: list[str]
) -> None:
    with pytest.raises(error) as caught:
        check_provider(spec_of(provider="unsloth"), cuda=cuda, installed=installed)
    assert caught.value.exit_code == exitcodes.UNSUPPORTED  # type: ignore[attr-defined]
    for fragment in fragments:
        assert fragment in caught.value.message  # type: ignore[attr-defined]
    # huggingface needs nothing more.
    check_provider(spec_of(), cuda=cuda, installed=installed)


def test_unsloth_arguments_follow_the_spec() -> None:
    spec = spec_of(
        provider="unsloth",
        method="qlora",
        hyperparameters={"loraRank": 8, "loraAlpha": 16, "maxSeqLength": 2048, "gradientCheckpointing": True},
    )
    assert unsloth_load_kwargs(spec, Path("/workspace/model"), torch.bfloat16) == {
        "model_name": "/workspace/model",
        "max_seq_length": 2048,
        "dtype": torch.bfloat16,
        "load_in_4bit": True,
        "full_finetuning": False,
        "local_files_only": True,
    }
    assert unsloth_peft_kwargs(spec, ["q_proj", "v_proj"]) == {
        "r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
        "use_gradient_checkpointing": "unsloth",
        "random_state": 42,
    }


@pytest.mark.skipif(torch.cuda.is_available() and unsloth_installed(), reason="unsloth can run here")
def test_an_unsloth_run_on_this_machine_ends_with_a_reason_not_a_stack_trace(run_trainer: Runner) -> None:
    run = run_trainer(EXAMPLES / "alpaca-sample.jsonl", provider="unsloth")
    assert run.exit_code == exitcodes.UNSUPPORTED
    assert run.termination["reason"] in ("UnsupportedHardware", "ProviderUnavailable")
    assert run.termination["message"].startswith("spec.provider unsloth")
    assert "use spec.provider huggingface (the default)" in run.termination["message"]
    log = run.run_file("train.log").read_text()
    assert "Traceback" not in log
    # Refused before the data was read or the model loaded.
    assert "dataset:" not in log and "loading the model" not in log
