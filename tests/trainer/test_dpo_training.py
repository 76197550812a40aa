"""spec.trainer dpo: trl's DPOTrainer with a LoRA adapter against the base model, on the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from peft import LoraConfig, PeftModel
from support.manifests import BASE, merge
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge import exitcodes
from tuneforge.api import FineTuneJob
from tuneforge.capabilities import unsupported
from tuneforge.operator.config import OperatorConfig
from tuneforge.operator.plan import Plan, Refusal, plan
from tuneforge.trainer.dpo import build_dpo_trainer, dpo_config_kwargs
from tuneforge.trainer.hyperparams import sft_kwargs
from tuneforge.trainer.metrics import eval_metrics, final_metrics

pytestmark = [
    # peft's PeftModel.from_pretrained asks transformers a deprecated question.
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
PREFERENCES = json.loads((EXAMPLES / "preference-sample.json").read_text())
Runner = Any  # run_trainer (conftest.py)


def spec_of(**spec: Any) -> FineTuneJob:
    return FineTuneJob.from_manifest(merge(BASE, {"spec": spec}))


# --- what the operator and the trainer accept -------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"trainer": "dpo", "dataset": {"format": "preference"}},
        {"trainer": "dpo", "dataset": {"format": "auto", "overlength": "drop"}},
        {"dataset": {"format": "prompt-completion", "evalSplit": 0.1}},
        {"dataset": {"format": "alpaca"}, "hyperparameters": {"dpoBeta": 0.5}},
    ],
)
def test_the_operator_refuses_nothing_of_this(spec: dict[str, Any]) -> None:
    manifest = merge(BASE, {"spec": spec})
    assert isinstance(plan(manifest, OperatorConfig()), Plan)
    assert unsupported(spec_of(**spec).spec) == []


def test_dpo_needs_an_adapter_so_full_fine_tuning_is_refused() -> None:
    got = plan(merge(BASE, {"spec": {"trainer": "dpo", "method": "full"}}), OperatorConfig())
    assert isinstance(got, Refusal) and got.reason == "NotSupportedYet"
    assert "spec.trainer dpo with spec.method full is not supported yet" in got.message


# --- configuration and metrics ----------------------------------------------------------


def test_dpo_takes_the_shared_training_arguments_plus_beta(tmp_path: Path) -> None:
    from trl.trainer.dpo_config import DPOConfig

    hp = spec_of(
        trainer="dpo",
        hyperparameters={"learningRate": 5e-6, "epochs": 2, "maxSeqLength": 512, "dpoBeta": 0.25, "seed": 3},
    ).spec.hyperparameters
    shared = sft_kwargs(hp, None, precision="fp32", cuda=False, has_eval=False, output_dir=tmp_path)
    kwargs = dpo_config_kwargs(shared, hp)
    assert "packing" in shared and "packing" not in kwargs  # SFT-only
    config = DPOConfig(**kwargs)
    assert (config.beta, config.learning_rate, config.num_train_epochs) == (0.25, 5e-6, 2)
    assert (config.max_length, config.seed, config.activation_checkpointing) == (512, 3, False)
    assert not config.bf16 and not config.fp16


def test_dpo_logs_become_status_metrics() -> None:
    evaluation = {
        "eval_loss": 0.41,
        "eval_rewards/accuracies": 0.875,
        "eval_rewards/margins": 1.5,
        "eval_runtime": 2.0,
    }
    # exp(DPO loss) is no perplexity.
    assert eval_metrics(evaluation) == {
        "evalLoss": 0.41,
        "evalRewardAccuracy": 0.875,
        "evalRewardMargin": 1.5,
        "evalRuntimeSeconds": 2.0,
    }
    history = [
        {"loss": 0.69, "rewards/accuracies": 0.0, "rewards/margins": 0.0, "step": 1},
        {"loss": 0.5, "rewards/accuracies": 0.75, "rewards/margins": 0.6, "step": 2},
        {**evaluation, "step": 2},
    ]
    metrics = final_metrics(
        history, {"train_loss": 0.6}, train_samples=8, truncated_samples=0, dropped_samples=2
    )
    assert metrics == {
        "trainSamples": 8,
        "truncatedSamples": 0,
        "droppedSamples": 2,
        "trainLoss": 0.6,
        "finalLoss": 0.5,
        "rewardAccuracy": 0.75,
        "rewardMargin": 0.6,
        "evalLoss": 0.41,
        "evalRewardAccuracy": 0.875,
        "evalRewardMargin": 1.5,
        "evalRuntimeSeconds": 2.0,
    }


def test_the_reference_is_the_base_model_with_the_adapter_off(tiny_model: Path, tmp_path: Path) -> None:
    from peft import PeftModel as Peft

    hp = spec_of(trainer="dpo").spec.hyperparameters
    shared = sft_kwargs(hp, None, precision="fp32", cuda=False, has_eval=False, output_dir=tmp_path)
    rows = [
        {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in PREFERENCES[:4]
    ]
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    trainer = build_dpo_trainer(
        shared,
        hp,
        rows,
        None,
        model,
        AutoTokenizer.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    # No second model: trl computes the reference log-probabilities with the adapter disabled.
    assert trainer.ref_model is None and isinstance(trainer.model, Peft)
    assert trainer.model.get_base_model() is model


# --- a real run ---------------------------------------------------------------------------


def completion_logps(model: Any, tokenizer: Any, prompt: list[Any], answer: list[Any]) -> float:
    """Sum of log-probabilities of the answer's tokens after the prompt, as DPO scores it."""
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(prompt + answer, tokenize=True)
    prompt_ids, full = list(prompt_ids["input_ids"]), list(full["input_ids"])
    assert full[: len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0, :-1]
    logps = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(full[1:])
    picked = logps[torch.arange(len(targets)), targets]
    return float(picked[len(prompt_ids) - 1 :].sum())


@pytest.mark.slow
def test_a_dpo_run_prefers_the_chosen_answers(run_trainer: Runner, tiny_model: Path, tmp_path: Path) -> None:
    # 30 pairs (2 longer than 56 tokens: dropped), evaluated on 14 of them from a Parquet file.
    train = tmp_path / "train.json"
    train.write_text(json.dumps(PREFERENCES[:30]))
    eval_pairs = [r for i, r in enumerate(PREFERENCES[:15]) if i != 2]  # record 2 is 61 tokens long
    assert len(eval_pairs) == 14  # two eval batches of 7: their mean margin is the mean of all
    (tmp_path / "eval").mkdir()
    pq.write_table(pa.Table.from_pylist(eval_pairs), tmp_path / "eval" / "pairs.parquet")
    beta = 0.1
    run = run_trainer(
        train,
        eval_dataset=tmp_path / "eval",
        trainer="dpo",
        dataset={"format": "auto", "evalSource": "s3://datasets/eval/", "overlength": "drop"},
        hyperparameters={
            "maxSteps": 8,  # 2 epochs of 28 pairs
            "batchSize": 7,
            "maxSeqLength": 56,
            "loggingSteps": 2,
            "learningRate": 3e-3,
            "dpoBeta": beta,
        },
        evaluation={"strategy": "steps", "steps": 4},
    )
    assert run.exit_code == exitcodes.OK, run.termination
    adapter_uri = (run.output / "adapter").as_uri()
    assert run.termination["message"] == (
        f"trained 8 steps on 28 samples; adapter at {adapter_uri}; 2 samples longer than maxSeqLength dropped"
    )
    metrics = run.termination["metrics"]
    assert (metrics["trainSamples"], metrics["droppedSamples"], metrics["truncatedSamples"]) == (28, 2, 0)
    assert "perplexity" not in metrics
    assert math.isfinite(metrics["finalLoss"]) and metrics["finalLoss"] < math.log(2)

    # Before the first update policy == reference (margins 0); the margins grow as it learns.
    train_logs = [h for h in run.history if "rewards/margins" in h]
    assert train_logs[0]["step"] == 1 and train_logs[0]["rewards/margins"] == 0.0
    assert metrics["rewardMargin"] > 0.3 and metrics["rewardAccuracy"] >= 0.75
    evals = [h for h in run.history if "eval_rewards/margins" in h]
    assert [h["step"] for h in evals] == [4, 8]
    assert 0 < evals[0]["eval_rewards/margins"] < evals[1]["eval_rewards/margins"]
    assert metrics["evalRewardMargin"] == evals[1]["eval_rewards/margins"]
    assert metrics["evalRewardAccuracy"] >= 0.75

    # The saved adapter loads, and on its own reproduces the preference: chosen answers gain against
    # the base model more than rejected ones.
    tokenizer = AutoTokenizer.from_pretrained(run.output / "adapter")
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), run.output / "adapter"
    )
    tuned.eval()
    margins = []
    for pair in eval_pairs:
        gains = []
        for key in ("chosen", "rejected"):
            policy = completion_logps(tuned, tokenizer, pair["prompt"], pair[key])
            with tuned.disable_adapter():
                reference = completion_logps(tuned, tokenizer, pair["prompt"], pair[key])
            gains.append(policy - reference)
        margins.append(beta * (gains[0] - gains[1]))
    assert sum(m > 0 for m in margins) >= 10
    assert sum(margins) / len(margins) == pytest.approx(metrics["evalRewardMargin"], abs=1e-3)

    status = json.loads(run.run_file("status.json").read_text())
    assert status["dataset"]["format"] == "preference" and status["metrics"] == metrics
    assert json.loads((run.workdir / "status.json").read_text())["progress"]["step"] == 8
