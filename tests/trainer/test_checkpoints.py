"""Checkpoint names, the spec fingerprint, which checkpoint to resume from and which to delete (pure)."""

from __future__ import annotations

import json

import pytest
from support.manifests import BASE, merge

from tuneforge.api import FineTuneJob
from tuneforge.api.finetunejob import Checkpoints
from tuneforge.capabilities import unsupported
from tuneforge.trainer.checkpoints import (
    CheckpointIdentity,
    StoredCheckpoint,
    checkpoint_name,
    checkpoint_step,
    checkpoints_prefix,
    differences,
    newest_complete,
    save_kwargs,
    to_delete,
)
from tuneforge.trainer.samplelog import enabled, id_columns, index_rows, read_sample_log, row_key

RECORDS = [{"instruction": "add", "input": "1+1", "output": "2"}, {"instruction": "say hi", "output": "hi"}]


def job(**spec) -> FineTuneJob:
    return FineTuneJob.from_manifest(merge(BASE, {"spec": spec}))


def identity(records=RECORDS, **spec) -> CheckpointIdentity:
    return CheckpointIdentity.of(job(**spec), records)


def test_checkpoints_are_no_longer_refused() -> None:
    assert not [p for p in unsupported(job(checkpoints={"intervalSteps": 4}).spec) if "checkpoints" in p]


def test_interval_steps_or_epochs_become_the_trainers_save_strategy() -> None:
    assert save_kwargs(None) == {"save_strategy": "no"}
    by_steps = save_kwargs(Checkpoints(interval_steps=4, keep=2))
    assert by_steps["save_strategy"] == "steps" and by_steps["save_steps"] == 4
    assert by_steps["save_only_model"] is False  # optimizer, scheduler and RNG go in too
    assert save_kwargs(Checkpoints())["save_strategy"] == "epoch"
    assert "save_steps" not in save_kwargs(Checkpoints())


def test_names_and_prefix() -> None:
    assert checkpoint_name(12) == "checkpoint-12"
    assert [checkpoint_step(n) for n in ("checkpoint-12", "checkpoint-7/", "checkpoint-", "ckpt-3", "x")] == [
        12,
        7,
        None,
        None,
        None,
    ]
    assert checkpoints_prefix("s3://b/runs/demo/") == "s3://b/runs/demo/checkpoints"


def test_the_fingerprint_ignores_what_does_not_change_the_weights() -> None:
    base = identity(hyperparameters={"learningRate": 0.001})
    same = identity(
        hyperparameters={"learningRate": 0.001, "loggingSteps": 1},
        output={"uri": "gs://elsewhere/run"},
        dataset={"source": "file:///moved/train.jsonl"},
        resources={"gpus": 1, "memory": "8Gi"},
        checkpoints={"intervalSteps": 5, "keep": 3},
        runPolicy={"backoffLimit": 9},
        model={"source": "s3://models/tiny", "tokenSecretRef": {"name": "other", "key": "token"}},
    )
    assert same.fingerprint == base.fingerprint


@pytest.mark.parametrize(
    ("spec", "records", "clause"),
    [
        (
            {"hyperparameters": {"learningRate": 0.002}},
            RECORDS,
            "spec.hyperparameters.learningRate 0.001 there, 0.002 here",
        ),
        (
            {"hyperparameters": {"learningRate": 0.001, "seed": 7}},
            RECORDS,
            "spec.hyperparameters.seed 42 there, 7 here",
        ),
        (
            {"hyperparameters": {"learningRate": 0.001}, "method": "qlora"},
            RECORDS,
            'spec.method "lora" there',
        ),
        ({"hyperparameters": {"learningRate": 0.001}}, RECORDS[:1], "the training records differ"),
        (
            {
                "hyperparameters": {"learningRate": 0.001},
                "dataset": {"source": "s3://data/train.jsonl", "overlength": "drop"},
            },
            RECORDS,
            'spec.dataset.overlength "truncate" there, "drop" here',
        ),
        ({"hyperparameters": {"learningRate": 0.001}}, RECORDS[::-1], "the training records differ"),
    ],
)
def test_what_changes_the_weights_changes_the_fingerprint_and_is_named(spec, records, clause) -> None:
    theirs = identity(hyperparameters={"learningRate": 0.001})
    ours = identity(records, **spec)
    assert ours.fingerprint != theirs.fingerprint
    assert any(clause in d for d in differences(theirs, ours)), differences(theirs, ours)


def test_a_field_present_on_one_side_only_reads_unset() -> None:
    theirs = identity()
    ours = identity(distributed={"nodes": 1, "gpusPerNode": 1})
    assert any("spec.distributed.nodes (unset) there, 1 here" in d for d in differences(theirs, ours))


def test_identity_round_trips_through_its_json_file() -> None:
    mine = identity().at_step(8)
    text = mine.to_json()
    doc = json.loads(text)
    assert doc["step"] == 8 and doc["dataSha256"] == mine.data_sha256
    assert doc["job"] == {"namespace": "team-a", "name": "demo", "uid": "0000-1111"}
    assert CheckpointIdentity.from_json(text) == mine


def stored(*steps_complete: tuple[int, bool]) -> list[StoredCheckpoint]:
    return [StoredCheckpoint(step, checkpoint_name(step), complete) for step, complete in steps_complete]


def test_the_newest_complete_checkpoint_wins_over_a_newer_half_upload() -> None:
    found = stored((4, True), (8, True), (12, False))
    assert newest_complete(found) == StoredCheckpoint(8, "checkpoint-8", True)
    assert newest_complete(stored((4, False))) is None
    assert newest_complete([]) is None


def test_keep_holds_the_newest_complete_ones_and_drops_stale_half_uploads() -> None:
    found = stored((4, True), (6, False), (8, True), (12, True), (16, False))
    gone = to_delete(found, keep=2, saved_step=12)
    # 8 and 12 stay; 4 and the abandoned half-upload at 6 go; 16 is newer than the save: left alone.
    assert [c.step for c in gone] == [4, 6]
    assert [c.step for c in to_delete(found, keep=1, saved_step=12)] == [4, 6, 8]
    assert to_delete(stored((4, True)), keep=2, saved_step=4) == []


def test_a_stale_complete_checkpoint_newer_than_the_save_never_evicts_the_save() -> None:
    found = stored((4, True), (20, True))
    assert to_delete(found, keep=1, saved_step=4) == []


def test_sample_log_helpers() -> None:
    assert (
        enabled({"TUNEFORGE_SAMPLE_LOG": "1"})
        and not enabled({})
        and not enabled({"TUNEFORGE_SAMPLE_LOG": "0"})
    )
    assert id_columns(["labels", "input_ids", "attention_mask"]) == ["input_ids"]
    assert id_columns(["prompt_input_ids", "chosen_input_ids", "rejected_input_ids"]) == [
        "chosen_input_ids",
        "prompt_input_ids",
        "rejected_input_ids",
    ]
    index, repeated = index_rows([([1, 2],), ([3],), ([1, 2],)])
    assert repeated == 1 and index[row_key([[1, 2]])] == 0 and index[row_key([[3]])] == 1
    # Columns are kept apart: [1],[2,3] is not [1,2],[3].
    assert row_key([[1], [2, 3]]) != row_key([[1, 2], [3]])
    assert read_sample_log('{"step": 1, "samples": [3, 0]}\n\n{"step": 2, "samples": [1]}\n') == [
        (1, [3, 0]),
        (2, [1]),
    ]
