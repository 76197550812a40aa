"""How failures become a termination reason and an exit code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from tuneforge import exitcodes
from tuneforge.storage import StorageError
from tuneforge.trainer.main import Run, is_out_of_memory


@pytest.fixture
def run(tmp_path: Path) -> Run:
    args = argparse.Namespace(
        spec=tmp_path / "spec.yaml", model=tmp_path, dataset=tmp_path, eval_dataset=None, workdir=tmp_path
    )
    return Run(args)


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
    ],
)
def test_out_of_memory_names_the_knobs(run: Run, error: Exception) -> None:
    assert is_out_of_memory(error)
    outcome = run._unexpected(error)
    assert (outcome.reason, outcome.exit_code) == ("OutOfMemory", exitcodes.OUT_OF_MEMORY)
    for knob in ("batchSize", "maxSeqLength", "gradientCheckpointing", "resources.memory"):
        assert knob in outcome.message


def test_storage_errors_keep_their_reason_and_code(run: Run) -> None:
    outcome = run._unexpected(StorageError("AccessDenied", "cannot write s3://b/out: access denied"))
    assert (outcome.reason, outcome.exit_code) == ("AccessDenied", exitcodes.ACCESS_DENIED)


def test_anything_else_is_a_retryable_failure(run: Run) -> None:
    assert not is_out_of_memory(ValueError("out of memory"))  # only runtime errors speak of allocation
    outcome = run._unexpected(ValueError("boom"))
    assert (outcome.reason, outcome.message, outcome.exit_code) == ("TrainingFailed", "ValueError: boom", 1)


def test_a_wrong_command_line_exits_usage_with_a_termination_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneforge.trainer.main import main

    termination = tmp_path / "termination-log"
    monkeypatch.setenv("TUNEFORGE_TERMINATION_MESSAGE_PATH", str(termination))
    with pytest.raises(SystemExit) as caught:
        main(["--spec", "spec.yaml", "--model", "m"])
    assert caught.value.code == exitcodes.USAGE
    message = json.loads(termination.read_text())
    assert message["reason"] == "InvalidArguments"
    assert "the following arguments are required: --dataset, --workdir" in message["message"]


def test_an_unusable_work_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneforge.trainer.main import main

    termination = tmp_path / "termination-log"
    monkeypatch.setenv("TUNEFORGE_TERMINATION_MESSAGE_PATH", str(termination))
    (tmp_path / "file").write_text("not a folder")
    argv = [
        "--spec",
        "s.yaml",
        "--model",
        "m",
        "--dataset",
        "d",
        "--workdir",
        str(tmp_path / "file" / "work"),
    ]
    assert main(argv) == exitcodes.FAILED
    assert json.loads(termination.read_text())["reason"] == "WorkdirUnusable"
