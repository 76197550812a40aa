"""Weights & Biases tracking: a real wandb run, offline (no network here), read back from its run file."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from wandb.proto import wandb_internal_pb2

from tuneforge import exitcodes
from tuneforge.api import FineTuneJob
from tuneforge.trainer.tracking import (
    TrackingUnavailable,
    check_can_start,
    init_kwargs,
    report_to,
    run_id,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
Runner = Any
KEY = "sentinel-key-0123456789abcdef0123456789abcdef01"  # looks like a W&B key; must never leave the env
WANDB = {
    "wandb": {"project": "tiny", "entity": "team", "tags": ["ci", "tiny"], "apiKeySecretRef": {"name": "wb"}}
}


def job(**spec: Any) -> FineTuneJob:
    return FineTuneJob.model_validate(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "tiny", "namespace": "ml", "uid": "5f0c/7a:1"},
            "spec": {
                "model": {"source": "s3://models/tiny"},
                "dataset": {"source": "s3://data/d"},
                "output": {"uri": "s3://out/o"},
                **spec,
            },
        }
    )


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of a .wandb run file (a LevelDB-style log: 32 KiB blocks, CRC32 per chunk)."""
    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # block padding
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + chunk) == checksum, f"bad checksum at {pos}"
        pos += 7 + length
        pending += chunk
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item: Any) -> str:
    return "/".join(item.nested_key) or item.key


def test_init_arguments_come_from_the_spec_without_secrets(tmp_path: Path) -> None:
    j = job(tracking=WANDB)
    assert j.spec.tracking is not None and j.spec.tracking.wandb is not None
    kwargs = init_kwargs(j, j.spec.tracking.wandb, tmp_path)
    assert {k: kwargs[k] for k in ("project", "entity", "name", "tags", "id", "resume", "dir")} == {
        "project": "tiny",
        "entity": "team",
        "name": "ml/tiny",
        "tags": ["ci", "tiny"],
        "id": "5f0c-7a-1",  # a restarted pod continues the same run
        "resume": "allow",
        "dir": str(tmp_path),
    }
    assert kwargs["config"]["finetunejob"]["tracking"]["wandb"]["apiKeySecretRef"] == "<redacted>"
    named = job(tracking={"wandb": {**WANDB["wandb"], "runName": "exp-1"}})
    assert named.spec.tracking is not None and named.spec.tracking.wandb is not None
    assert init_kwargs(named, named.spec.tracking.wandb, tmp_path)["name"] == "exp-1"
    assert report_to(j.spec) == ["wandb"] and report_to(job().spec) == "none"
    assert run_id(j) == "5f0c-7a-1"


def test_an_online_run_without_a_key_is_refused_clearly() -> None:
    with pytest.raises(TrackingUnavailable) as caught:
        check_can_start({})
    assert caught.value.exit_code == exitcodes.INVALID_INPUT
    assert "WANDB_API_KEY is not set" in caught.value.message
    assert "spec.tracking.wandb.apiKeySecretRef" in caught.value.message
    check_can_start({"WANDB_API_KEY": KEY})
    check_can_start({"WANDB_MODE": "offline"})


@pytest.mark.slow
def test_a_run_tracked_offline_logs_its_metrics_and_reports_the_run_url(
    run_trainer: Runner, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    run = run_trainer(
        EXAMPLES / "alpaca-sample.jsonl", tracking=WANDB, hyperparameters={"batchSize": 2, "maxSeqLength": 64}
    )
    assert run.exit_code == exitcodes.OK, run.termination

    # status.trackingURL: wandb's own URL of the run, well-formed, naming entity, project and run id.
    local = json.loads((run.workdir / "status.json").read_text())
    url = urlparse(local["trackingURL"])
    assert url.scheme == "https" and url.netloc
    assert url.path.endswith("/team/tiny/runs/0000-1111")

    # The offline run folder holds the run: its name, tags and every logged training loss.
    (run_file,) = (run.workdir / "wandb").glob("offline-run-*/run-0000-1111.wandb")
    records = list(wandb_records(run_file))
    (header,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (header.project, header.entity, header.display_name) == ("tiny", "team", "tests/tiny")
    assert list(header.tags) == ["ci", "tiny"]
    logged = [
        {_key(i): json.loads(i.value_json) for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    losses = [(h["train/global_step"], h["train/loss"]) for h in logged if "train/loss" in h]
    assert losses == [(h["step"], pytest.approx(h["loss"])) for h in run.history if "loss" in h]
    assert len(losses) == 4
    assert [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"] == [0]

    # The key is nowhere: not in the logs, the run record, the status, the termination message, the run files.
    out, err = capfd.readouterr()
    written = [p for root in (run.workdir, run.output) for p in root.rglob("*") if p.is_file()]
    assert written
    leaks = [str(p) for p in written if KEY.encode() in p.read_bytes()]
    assert leaks == [] and KEY not in out + err and KEY not in run.termination_file.read_text()
