"""``tuneforge launch``: two CPU processes (gloo) train one adapter, and the container ends as one trainer.

The real launcher runs the real trainer twice under torchrun's agent; what the
ranks did is read back from the run record (``status.json`` → ``distributed``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuneforge import exitcodes
from tuneforge.trainer.distributed import (
    RANK_MESSAGES_ENV,
    Worker,
    batch_size,
    rank_message_name,
    route_termination_message,
    training_kwargs,
    weights_digest,
)
from tuneforge.trainer.errors import UnsupportedHardware
from tuneforge.trainer.launch import LaunchPlan, WorkerFailure, build_parser, failed, plan, succeeded

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

REPO = Path(__file__).resolve().parents[2]
TUNEFORGE = Path(sys.executable).parent / "tuneforge"
SAMPLES = 32


def test_two_processes_train_together_and_only_rank_0_writes(tmp_path, tiny_model):
    data = tmp_path / "train.jsonl"
    lines = (REPO / "examples/data/alpaca-sample.jsonl").read_text().splitlines()[:SAMPLES]
    data.write_text("\n".join(lines) + "\n")
    output, workdir, termination = tmp_path / "out", tmp_path / "work", tmp_path / "termination-log"
    spec = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "pair", "namespace": "tests", "uid": "0000-2222"},
        "spec": {
            "model": {"source": "s3://models/tiny"},
            "dataset": {"source": "s3://datasets/train.jsonl"},
            "output": {"uri": output.as_uri()},
            "hyperparameters": {"epochs": 1, "batchSize": 4, "maxSeqLength": 96, "loggingSteps": 1},
            "resources": {"gpus": 0},
            "distributed": {"gpusPerNode": 2},
        },
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["TUNEFORGE_TERMINATION_MESSAGE_PATH"] = str(termination)
    trainer_args = ["--spec", str(tmp_path / "spec.yaml"), "--model", str(tiny_model), "--dataset", str(data)]
    done = subprocess.run(
        [str(TUNEFORGE), "launch", "--nproc-per-node", "2", "--standalone", "--", "train", *trainer_args]
        + ["--workdir", str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Every line of the workers' output says which rank wrote it.
    assert "[rank0]:" in done.stderr and "[rank1]:" in done.stderr

    # The container's termination message is rank 0's result, as for a single trainer.
    said = json.loads(termination.read_text())
    assert said["reason"] == "Succeeded"
    assert said["artifacts"]["adapter"] == f"{output.as_uri()}/adapter"
    assert said["message"].startswith("trained 4 steps on 32 samples")  # 32 / (4 per rank x 2 ranks)

    record = json.loads((output / "run" / "status.json").read_text())
    dist = record["distributed"]
    assert (dist["worldSize"], dist["processesPerNode"], dist["strategy"], dist["backend"]) == (
        2,
        2,
        "ddp",
        "gloo",
    )
    ranks = dist["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1]
    # Each rank trained on half the samples of every step (4 steps of 4 samples each)...
    assert [(r["samples"], r["microBatches"]) for r in ranks] == [(16, 4), (16, 4)]
    assert all(r["tokens"] > 0 for r in ranks)
    # ...and both ended with the same weights, which are the uploaded adapter's.
    assert ranks[0]["weightsSha256"] == ranks[1]["weightsSha256"] and dist["weightsIdentical"]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    adapter = PeftModel.from_pretrained(base, output / "adapter", is_trainable=True)
    assert weights_digest(adapter) == ranks[0]["weightsSha256"]

    # Rank 0 alone wrote the log and the record; rank 1 logged to the console only.
    assert sorted(p.name for p in (output / "run").iterdir()) == [
        "config.json",
        "metrics.jsonl",
        "status.json",
        "train.log",
    ]
    assert not list(workdir.glob("*rank*"))


# --- the launcher's decisions, without processes --------------------------------------------


def parse(*argv: str):
    return plan(build_parser().parse_args(list(argv)))


def test_the_command_line_is_checked_before_anything_starts():
    launch = parse("--nproc-per-node", "2", "--standalone", "--", "train", "--spec", "s.yaml")
    assert launch == LaunchPlan(2, 1, 0, None, None, ["--spec", "s.yaml"])
    with pytest.raises(ValueError, match="the Job's completion index is missing"):
        parse(
            "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "$(JOB_COMPLETION_INDEX)", "--", "train"
        )
    with pytest.raises(ValueError, match="outside 0..1"):
        parse(
            "--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "2", "--master-addr", "a", "--", "train"
        )
    with pytest.raises(ValueError, match="need --master-addr and --master-port"):
        parse("--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "1", "--", "train")
    with pytest.raises(ValueError, match="-- train ARGS"):
        parse("--nproc-per-node", "2", "--", "fetch", "a", "b")


def test_a_wrong_command_line_ends_with_a_usage_message(tmp_path):
    termination = tmp_path / "termination-log"
    env = {**os.environ, "TUNEFORGE_TERMINATION_MESSAGE_PATH": str(termination)}
    args = ["--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "", "--", "train"]
    done = subprocess.run(
        [str(TUNEFORGE), "launch", *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == exitcodes.USAGE
    said = json.loads(termination.read_text())
    assert said["reason"] == "InvalidArguments" and "completion index is missing" in said["message"]


def write_message(folder: Path, rank: int, reason: str, message: str, **extra) -> None:
    (folder / rank_message_name(rank)).write_text(json.dumps({"reason": reason, "message": message, **extra}))


LAUNCH = LaunchPlan(2, 2, 0, "run-0.run", 29500, [])


def test_the_root_cause_is_passed_on_not_the_workers_stopped_because_of_it(tmp_path):
    write_message(tmp_path, 1, "DatasetInvalid", "data.jsonl:3: not JSON")
    write_message(tmp_path, 0, "Preempted", "stopped by SIGTERM")
    failures = [
        WorkerFailure(rank=0, exit_code=exitcodes.PREEMPTED, timestamp=10.0),  # stopped first, but a victim
        WorkerFailure(rank=1, exit_code=exitcodes.INVALID_INPUT, timestamp=11.0),
    ]
    ending = failed(tmp_path, failures, LAUNCH)
    # The exit code is the trainer's: the Job's podFailurePolicy fails at once on invalid input.
    assert (ending.exit_code, ending.reason) == (exitcodes.INVALID_INPUT, "DatasetInvalid")
    assert ending.message == "trainer rank 1 of 4: data.jsonl:3: not JSON"


def test_a_worker_killed_by_a_signal_is_described_and_stays_retryable(tmp_path):
    ending = failed(tmp_path, [WorkerFailure(rank=3, exit_code=-signal.SIGKILL, timestamp=1.0)], LAUNCH)
    assert (ending.exit_code, ending.reason) == (exitcodes.FAILED, "WorkerKilled")
    assert "trainer rank 3 of 4 was killed by SIGKILL" in ending.message
    assert "batchSize" in ending.message  # the out-of-memory hint


def test_success_passes_on_the_lowest_ranks_result(tmp_path):
    write_message(tmp_path, 1, "Succeeded", "rank 1 of 2: trained 4 steps")
    write_message(tmp_path, 0, "Succeeded", "trained 4 steps", artifacts={"adapter": "s3://b/a"})
    ending = succeeded(tmp_path, [0, 1], LAUNCH)
    assert (ending.exit_code, ending.message, ending.extra) == (
        0,
        "trained 4 steps",
        {"artifacts": {"adapter": "s3://b/a"}},
    )


# --- the worker side ------------------------------------------------------------------------


def test_a_worker_knows_its_rank_and_writes_its_own_termination_message(tmp_path):
    env = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1"}
    env |= {
        "GROUP_WORLD_SIZE": "2",
        RANK_MESSAGES_ENV: str(tmp_path),
        "TUNEFORGE_TERMINATION_MESSAGE_PATH": "/x",
    }
    worker = Worker.from_env(env)
    assert (worker.rank, worker.node_rank, worker.nodes, worker.is_main) == (3, 1, 2, False)
    route_termination_message(worker, env)
    assert env["TUNEFORGE_TERMINATION_MESSAGE_PATH"] == str(tmp_path / "rank-3.json")
    alone: dict[str, str] = {"TUNEFORGE_TERMINATION_MESSAGE_PATH": "/x"}
    route_termination_message(Worker.from_env(alone), alone)
    assert alone["TUNEFORGE_TERMINATION_MESSAGE_PATH"] == "/x" and Worker.from_env({}).is_main


def test_training_arguments_for_several_processes():
    two = Worker(rank=0, world_size=2, local_world_size=2)
    assert training_kwargs("ddp", Worker(), cuda=False) == {}
    assert training_kwargs("ddp", two, cuda=False) == {
        "ddp_backend": "gloo",
        "ddp_find_unused_parameters": False,
    }
    fsdp = training_kwargs("fsdp", two, cuda=True)
    assert fsdp["ddp_backend"] == "nccl" and fsdp["fsdp"] is True
    assert fsdp["fsdp_config"]["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    with pytest.raises(UnsupportedHardware, match="fsdp needs CUDA GPUs"):
        training_kwargs("fsdp", two, cuda=False)


def test_samples_and_real_tokens_are_counted_whatever_the_batch_shape():
    import torch

    padded = {
        "input_ids": torch.zeros(3, 5),
        "attention_mask": torch.tensor([[1] * 5, [1] * 2 + [0] * 3, [1] * 4 + [0]]),
    }
    assert batch_size(padded) == (3, 11)
    flat = {"input_ids": torch.zeros(1, 7), "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0, 1]])}
    assert batch_size(flat) == (3, 7)
