"""Real LoRA SFT runs of the tiny model on CPU: adapter, run record, termination message, status."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from tuneforge import exitcodes

pytestmark = [
    pytest.mark.slow,
    # peft's PeftModel.from_pretrained asks transformers a deprecated question.
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
DATA = Path(__file__).parent / "data"
# run_trainer (conftest.py): (data_dir, /, *, eval_dataset, model, subprocess_run, **spec) -> TrainRun
Runner = Any


def test_alpaca_run_trains_evaluates_and_records_everything(run_trainer: Runner, tiny_model: Path) -> None:
    run = run_trainer(
        EXAMPLES / "alpaca-sample.jsonl",
        dataset={"format": "alpaca", "evalSplit": 0.1},
        hyperparameters={"maxSteps": 30, "loggingSteps": 5, "loraRank": 8, "loraAlpha": 16},
        evaluation={"strategy": "steps", "steps": 15},
    )
    assert run.exit_code == exitcodes.OK, run.termination

    adapter_uri, run_uri = (run.output / "adapter").as_uri(), (run.output / "run").as_uri()
    message = run.termination
    assert message["reason"] == "Succeeded"
    assert message["message"] == f"trained 30 steps on 270 samples; adapter at {adapter_uri}"
    assert message["artifacts"] == {"adapter": adapter_uri, "runRecord": run_uri}
    metrics = message["metrics"]
    assert metrics["trainSamples"] == 270 and metrics["truncatedSamples"] == 0
    assert metrics["evalLoss"] > 0 and metrics["perplexity"] == pytest.approx(math.exp(metrics["evalLoss"]))
    assert 0 < metrics["meanTokenAccuracy"] < 1
    assert metrics["tokensPerSecond"] > 0 and metrics["trainRuntimeSeconds"] > 0

    # The loss fell.
    losses = run.losses
    assert len(losses) == 7  # the first step, then every 5
    assert losses[-1] < losses[0] - 0.5, losses
    evals = [h["eval_loss"] for h in run.history if "eval_loss" in h]
    assert len(evals) == 2 and evals[-1] < evals[0]

    # The adapter loads with peft, and training moved its weights off their initialisation (B starts at 0).
    adapter = run.output / "adapter"
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "_MANIFEST.json"} <= {
        p.name for p in adapter.iterdir()
    }
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (8, 16)
    assert {name.rsplit(".", 1)[-1] for name in config["target_modules"]} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and all(w.abs().sum() > 0 for w in lora_b)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    tuned = PeftModel.from_pretrained(base, adapter)
    probe = torch.tensor([[4, 650, 16, 300, 301, 5]])
    with torch.no_grad():
        with tuned.disable_adapter():
            before = tuned(probe).logits
        after = tuned(probe).logits
    assert not torch.allclose(before, after)

    # The run record: the spec, the log, the metrics, and status.json written last.
    assert json.loads(run.run_file("config.json").read_text())["spec"]["hyperparameters"]["maxSteps"] == 30
    log = run.run_file("train.log").read_text()
    assert "step=30/30 percent=100" in log and "dataset: 300 alpaca records" in log
    assert "held out 30 records for evaluation" in log
    status = json.loads(run.run_file("status.json").read_text())
    assert status["reason"] == "Succeeded" and status["exitCode"] == 0
    assert status["metrics"] == metrics and status["artifacts"] == message["artifacts"]
    assert status["dataset"] == {
        "format": "alpaca",
        "trainRecords": 270,
        "evalRecords": 30,
        "skippedRecords": 0,
        "problems": [],
    }
    assert set(status["timings"]["phases"]) == {"data", "train", "upload"}

    # The local sink kept the work folder's status.json current.
    local = json.loads((run.workdir / "status.json").read_text())
    assert local["progress"]["step"] == 30 and local["progress"]["percent"] == 100
    assert local["progress"]["message"].startswith("Succeeded: trained 30 steps")
    assert local["metrics"]["evalLoss"] == metrics["evalLoss"]
    assert local["artifacts"] == {"adapter": adapter_uri, "runRecord": run_uri}


def test_chat_run_as_a_real_tuneforge_train_process_uploading_to_s3(
    run_trainer: Runner, tmp_path: Path, s3_server: Any, storage_env: Any
) -> None:
    lines = (EXAMPLES / "chat-sample.jsonl").read_text().splitlines()
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    train_dir.mkdir()
    eval_dir.mkdir()
    (train_dir / "part-1.jsonl").write_text("\n".join(lines[:150]) + "\n")
    (train_dir / "part-2.jsonl").write_text("\n".join(lines[150:280]) + "\n")
    (eval_dir / "eval.jsonl").write_text("\n".join(lines[280:]) + "\n")
    bucket = s3_server.make_bucket()
    storage_env(s3_server.env)  # the subprocess inherits the AWS_* variables, as the pod gets them
    run = run_trainer(
        train_dir,
        eval_dataset=eval_dir,
        subprocess_run=True,
        output_uri=f"s3://{bucket}/runs/chat",
        dataset={"format": "auto", "evalSource": "s3://datasets/eval.jsonl"},
        hyperparameters={
            "maxSteps": 20,
            "loggingSteps": 5,
            "targetModules": ["q_proj", "v_proj"],
            "loraRank": 4,
        },
        evaluation={"strategy": "epoch"},
    )
    assert run.exit_code == 0, run.stderr[-3000:]
    assert run.termination["reason"] == "Succeeded"
    assert run.termination["message"] == (
        f"trained 20 steps on 280 samples; adapter at s3://{bucket}/runs/chat/adapter; "
        "9 samples longer than maxSeqLength truncated"
    )
    assert run.termination["artifacts"] == {
        "adapter": f"s3://{bucket}/runs/chat/adapter",
        "runRecord": f"s3://{bucket}/runs/chat/run",
    }
    # maxSteps ends before the first epoch does: the trainer evaluates once at the end.
    assert run.termination["metrics"]["evalLoss"] > 0
    keys = set(s3_server.list_keys(bucket, "runs/chat/"))
    assert {
        "runs/chat/adapter/adapter_model.safetensors",
        "runs/chat/adapter/adapter_config.json",
        "runs/chat/adapter/_MANIFEST.json",
        "runs/chat/run/config.json",
        "runs/chat/run/train.log",
        "runs/chat/run/metrics.jsonl",
        "runs/chat/run/status.json",
    } <= keys
    history = [
        json.loads(line) for line in s3_server.get_object(bucket, "runs/chat/run/metrics.jsonl").splitlines()
    ]
    assert [h["step"] for h in history if "eval_loss" in h] == [20]
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0]
    config = json.loads(s3_server.get_object(bucket, "runs/chat/adapter/adapter_config.json"))
    assert set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert "step=20/20" in run.stderr and "dataset: 280 chat records" in run.stderr
    assert "{'loss'" not in run.stderr  # no raw log dicts from transformers' printer
    log = s3_server.get_object(bucket, "runs/chat/run/train.log").decode()
    assert s3_server.secret_key not in log and s3_server.secret_key not in run.stderr


def test_a_refused_upload_keeps_the_metrics_and_the_storage_reason(
    run_trainer: Runner, s3_server: Any, storage_env: Any
) -> None:
    bucket = s3_server.make_bucket()
    storage_env({**s3_server.env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value"})
    run = run_trainer(
        EXAMPLES / "alpaca-sample.jsonl", output_uri=f"s3://{bucket}/out", hyperparameters={"maxSteps": 2}
    )
    assert run.exit_code == exitcodes.ACCESS_DENIED, run.termination
    assert run.termination["reason"] == "AccessDenied"
    assert f"s3://{bucket}/out/adapter" in run.termination["message"]
    assert "wrong-secret-value" not in run.termination_file.read_text()
    assert run.termination["metrics"]["trainSamples"] == 300  # the training result survives the failed upload
    assert "artifacts" not in run.termination
    assert json.loads((run.workdir / "status.json").read_text())["progress"]["message"].startswith(
        "AccessDenied:"
    )


def test_skipped_and_truncated_samples_are_counted_not_hidden(run_trainer: Runner) -> None:
    # bad_json.jsonl: line 2 is broken; the other samples are 29, 20 and 24 tokens long.
    run = run_trainer(
        DATA / "bad_json.jsonl",
        hyperparameters={"maxSteps": 2, "maxSeqLength": 20, "batchSize": 2, "gradientCheckpointing": True},
    )
    assert run.exit_code == 0, run.termination
    message = run.termination["message"]
    assert "1 invalid record skipped (first: bad_json.jsonl:2: invalid JSON" in message
    assert "2 samples longer than maxSeqLength truncated" in message
    assert run.termination["metrics"]["truncatedSamples"] == 2
    status = json.loads(run.run_file("status.json").read_text())
    assert status["dataset"]["skippedRecords"] == 1
    assert status["dataset"]["problems"][0].startswith("bad_json.jsonl:2: invalid JSON")
    log = run.run_file("train.log").read_text()
    assert "skipping invalid record bad_json.jsonl:2" in log
    assert "2 of 3 samples are longer than maxSeqLength=20 tokens (longest 29)" in log


def test_a_max_seq_length_that_leaves_nothing_to_learn_is_refused(run_trainer: Runner) -> None:
    run = run_trainer(DATA / "bad_json.jsonl", hyperparameters={"maxSeqLength": 12})
    assert run.exit_code == exitcodes.INVALID_INPUT
    assert run.termination["reason"] == "InvalidSpec"
    assert run.termination["message"] == (
        "spec.hyperparameters.maxSeqLength 12 leaves nothing to learn: in every training sample the prompt "
        "alone fills it; raise maxSeqLength (the longest sample has 29 tokens)"
    )


def test_bad_dataset_fails_before_the_model_is_loaded(run_trainer: Runner, tmp_path: Path) -> None:
    # No model at all: reaching the model would fail differently.
    run = run_trainer(DATA / "all_bad.jsonl", model=tmp_path / "no-model")
    assert run.exit_code == exitcodes.INVALID_INPUT
    assert run.termination["reason"] == "DatasetInvalid"
    assert run.termination["message"].startswith(
        "the dataset has no valid alpaca records (3 invalid): all_bad.jsonl:1:"
    )
    status = json.loads(run.run_file("status.json").read_text())
    assert (status["reason"], status["exitCode"]) == ("DatasetInvalid", 3)
    assert "adapter" not in status["artifacts"]
    assert not (run.output / "adapter").exists()


def test_unknown_target_module_lists_the_models_modules(run_trainer: Runner) -> None:
    run = run_trainer(
        EXAMPLES / "alpaca-sample.jsonl", hyperparameters={"targetModules": ["q_proj", "c_attn"]}
    )
    assert run.exit_code == exitcodes.INVALID_INPUT
    assert run.termination == {
        "reason": "InvalidSpec",
        "message": "spec.hyperparameters.targetModules: 'c_attn' is not a linear module of this model; "
        "it has: down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj (or use all-linear)",
        "artifacts": {"runRecord": (run.output / "run").as_uri()},
    }


def test_chat_data_needs_a_chat_template(run_trainer: Runner, tiny_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "no-template"
    shutil.copytree(tiny_model, model)
    (model / "chat_template.jinja").unlink()
    run = run_trainer(EXAMPLES / "chat-sample.jsonl", model=model)
    assert run.exit_code == exitcodes.INVALID_INPUT
    assert "chat data needs a model with a chat template" in run.termination["message"]


@pytest.mark.parametrize(
    ("spec", "reason", "fragment"),
    [
        ({"cleanupPolicy": "Delete"}, "NotSupportedYet", "spec.cleanupPolicy Delete is not supported yet"),
        (
            {"hyperparameters": {"flashAttention": True}},
            "UnsupportedHardware",
            "flashAttention needs a CUDA GPU",
        ),
        (
            {"hyperparameters": {"precision": "bf16"}},
            "UnsupportedHardware",
            "precision bf16 needs a CUDA GPU",
        ),
    ],
)
def test_unsupported_requests_exit_unsupported(
    run_trainer: Runner, spec: dict[str, object], reason: str, fragment: str
) -> None:
    if reason == "UnsupportedHardware" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = run_trainer(EXAMPLES / "alpaca-sample.jsonl", **spec)
    assert run.exit_code == exitcodes.UNSUPPORTED
    assert run.termination["reason"] == reason
    assert fragment in run.termination["message"]


def test_invalid_spec_exits_invalid_input_without_a_run_record(run_trainer: Runner) -> None:
    run = run_trainer(EXAMPLES / "alpaca-sample.jsonl", hyperparameters={"loraRank": 0})
    assert run.exit_code == exitcodes.INVALID_INPUT
    assert run.termination["reason"] == "InvalidSpec"
    assert (
        "spec.hyperparameters.loraRank: Input should be greater than or equal to 1"
        in run.termination["message"]
    )
    assert not run.output.exists()
