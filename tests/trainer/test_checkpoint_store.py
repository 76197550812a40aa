"""Checkpoints in a real store (a local folder and SeaweedFS): resume point, refusals, keep, uploads.

No model here: the folders hold a few files standing for a Trainer checkpoint, which
is all the store side sees. The training side is in test_checkpoints_resume.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.manifests import BASE, merge

from tuneforge import exitcodes
from tuneforge.api import FineTuneJob
from tuneforge.reporting import Reporter
from tuneforge.storage import MANIFEST_NAME, exists, is_complete, read_text, upload_tree
from tuneforge.storage.backends import filesystem
from tuneforge.storage.uri import parse_uri
from tuneforge.trainer.checkpoint_store import CheckpointStore, Uploader
from tuneforge.trainer.checkpoints import IDENTITY_FILE, CheckpointIdentity, checkpoints_prefix
from tuneforge.trainer.resumable import CheckpointMismatch, CheckpointSession

RECORDS = [{"instruction": "add", "input": "1+1", "output": "2"}]


@pytest.fixture(params=["file", "s3"])
def output_uri(request: pytest.FixtureRequest, tmp_path: Path, storage_env) -> str:
    if request.param == "file":
        return (tmp_path / "out").as_uri()
    s3 = request.getfixturevalue("s3_server")
    storage_env(s3.env)
    return f"s3://{s3.make_bucket()}/runs/demo"


def job(output_uri: str, **spec) -> FineTuneJob:
    checkpoints = spec.pop("checkpoints", {"intervalSteps": 4, "keep": 2})
    return FineTuneJob.from_manifest(
        merge(BASE, {"spec": {"output": {"uri": output_uri}, "checkpoints": checkpoints, **spec}})
    )


def checkpoint_folder(root: Path, step: int, identity: CheckpointIdentity | None) -> Path:
    folder = root / f"local-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes([step]) * 1000)
    (folder / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
    if identity is not None:
        (folder / IDENTITY_FILE).write_text(identity.at_step(step).to_json())
    return folder


def drop_manifest(folder_uri: str) -> None:
    manifest = parse_uri(f"{folder_uri}/{MANIFEST_NAME}")
    filesystem(manifest).rm_file(manifest.fs_path)


def open_session(the_job: FineTuneJob, workdir: Path) -> CheckpointSession:
    return CheckpointSession.open(the_job, RECORDS, workdir, Reporter([]))


def test_a_half_uploaded_checkpoint_is_skipped_for_the_previous_complete_one(
    output_uri: str, tmp_path: Path
) -> None:
    the_job = job(output_uri)
    store = CheckpointStore(checkpoints_prefix(output_uri))
    mine = CheckpointIdentity.of(the_job, RECORDS)
    store.upload(checkpoint_folder(tmp_path, 4, mine), 4)
    store.upload(checkpoint_folder(tmp_path, 8, mine), 8)
    # The upload of checkpoint-8 was cut short: its files are there, its manifest (the commit mark) is not.
    drop_manifest(store.uri_of(8))
    assert not is_complete(store.uri_of(8)) and exists(f"{store.uri_of(8)}/trainer_state.json")

    found = store.scan()
    assert [(c.step, c.complete) for c in found] == [(4, True), (8, False)]
    session = open_session(the_job, tmp_path / "work")
    assert session.resume is not None and session.resume.step == 4
    assert session.resume.uri == store.uri_of(4)
    fetched = session.resume.path
    assert (fetched / "trainer_state.json").read_text() == '{"global_step": 4}'
    assert CheckpointIdentity.from_json((fetched / IDENTITY_FILE).read_text()).step == 4


def test_no_checkpoint_means_training_from_the_start(output_uri: str, tmp_path: Path) -> None:
    session = open_session(job(output_uri), tmp_path / "work")
    assert session.resume is None and session.store is not None
    assert session.store.scan() == []


def test_a_checkpoint_of_another_spec_is_refused_naming_what_differs(output_uri: str, tmp_path: Path) -> None:
    other = job(output_uri, hyperparameters={"learningRate": 0.001})
    store = CheckpointStore(checkpoints_prefix(output_uri))
    store.upload(checkpoint_folder(tmp_path, 4, CheckpointIdentity.of(other, RECORDS)), 4)
    with pytest.raises(CheckpointMismatch) as caught:
        open_session(job(output_uri, hyperparameters={"learningRate": 0.002}), tmp_path / "work")
    message = caught.value.message
    assert f"refusing to resume from {store.uri_of(4)}" in message
    assert "spec.hyperparameters.learningRate 0.001 there, 0.002 here" in message
    assert "spec.checkpoints.resume to false" in message and "spec.output.uri" in message
    assert caught.value.reason == "CheckpointMismatch" and caught.value.exit_code == exitcodes.INVALID_INPUT
    assert not (tmp_path / "work" / "resume").exists()  # nothing fetched


def test_other_training_data_is_refused_too(output_uri: str, tmp_path: Path) -> None:
    the_job = job(output_uri)
    store = CheckpointStore(checkpoints_prefix(output_uri))
    store.upload(checkpoint_folder(tmp_path, 4, CheckpointIdentity.of(the_job, RECORDS)), 4)
    with pytest.raises(CheckpointMismatch, match="the training records differ"):
        CheckpointSession.open(the_job, RECORDS + RECORDS, tmp_path / "work", Reporter([]))


def test_a_checkpoint_without_an_identity_file_is_refused(output_uri: str, tmp_path: Path) -> None:
    store = CheckpointStore(checkpoints_prefix(output_uri))
    store.upload(checkpoint_folder(tmp_path, 4, None), 4)
    with pytest.raises(CheckpointMismatch, match=f"no readable {IDENTITY_FILE}"):
        open_session(job(output_uri), tmp_path / "work")


def test_resume_false_starts_over_and_clears_the_prefix(output_uri: str, tmp_path: Path) -> None:
    store = CheckpointStore(checkpoints_prefix(output_uri))
    store.upload(checkpoint_folder(tmp_path, 4, None), 4)
    session = open_session(job(output_uri, checkpoints={"intervalSteps": 4, "resume": False}), tmp_path / "w")
    assert session.resume is None
    assert store.scan() == []


def test_the_uploader_commits_each_checkpoint_and_keeps_the_newest_k(output_uri: str, tmp_path: Path) -> None:
    the_job = job(output_uri)
    mine = CheckpointIdentity.of(the_job, RECORDS)
    store = CheckpointStore(checkpoints_prefix(output_uri))
    uploader = Uploader(store, keep=2)
    folders = [checkpoint_folder(tmp_path, step, mine) for step in (4, 8, 12)]
    for step, folder in zip((4, 8, 12), folders, strict=True):
        uploader.submit(step, folder)
    uploader.drain()
    assert not uploader.failures
    # A checkpoint still waiting when a newer one arrived may have been skipped; the newest never is.
    uploaded = [u.step for u in uploader.uploaded]
    assert uploaded[-1] == 12 and uploaded == sorted(uploaded)
    found = store.scan()
    assert all(c.complete for c in found) and len(found) <= 2 and found[-1].step == 12
    assert read_text(f"{store.uri_of(12)}/trainer_state.json") == '{"global_step": 12}'
    assert not any(f.exists() for f in folders), "the uploader deletes local copies"


def test_keep_is_held_across_sequential_uploads(output_uri: str, tmp_path: Path) -> None:
    mine = CheckpointIdentity.of(job(output_uri), RECORDS)
    store = CheckpointStore(checkpoints_prefix(output_uri))
    for step in (4, 8, 12, 16):
        upload_tree(checkpoint_folder(tmp_path, step, mine), store.uri_of(step))
        store.rotate(keep=2, saved_step=step)
    assert [(c.step, c.complete) for c in store.scan()] == [(12, True), (16, True)]
    assert not exists(store.uri_of(4) + "/trainer_state.json")


def test_a_failed_upload_is_reported_and_the_uploader_goes_on(s3_server, storage_env, tmp_path: Path) -> None:
    storage_env({**s3_server.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    bucket = s3_server.make_bucket()
    mine = CheckpointIdentity.of(job(f"s3://{bucket}/runs/demo"), RECORDS)
    refused = CheckpointStore(f"s3://{bucket}/runs/demo/checkpoints")
    uploader = Uploader(refused, keep=2)
    folder = checkpoint_folder(tmp_path, 4, mine)
    uploader.submit(4, folder)
    uploader.drain()
    assert uploader.uploaded == [] and [f.step for f in uploader.failures] == [4]
    assert bucket in uploader.failures[0].error and "not-the-secret" not in uploader.failures[0].error
    assert not folder.exists()
