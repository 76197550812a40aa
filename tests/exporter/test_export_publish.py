"""``tuneforge export`` end to end: adapter, merged and zip artifacts to file:// and s3://, and reuse."""

from __future__ import annotations

import hashlib
import json
import signal
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load

from tuneforge.exporter.identity import files_digest
from tuneforge.storage import fetch, is_complete
from tuneforge.storage.manifest import parse_manifest

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def spec(adapter: str, base: Path, *destinations: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"adapter": adapter, "baseModel": base.as_uri()},
        "destinations": [{"uri": uri} for uri in destinations],
        **extra,
    }


def modified(s3: Any, bucket: str, key: str) -> Any:
    return s3.client.head_object(Bucket=bucket, Key=key)["LastModified"]


def test_adapter_of_a_training_run_to_file_and_s3_then_reused(
    trained_output: Path, tiny_model: Path, s3_server: Any, storage_env: Any, export_run: Any, tmp_path: Path
) -> None:
    storage_env(s3_server.env)
    bucket = s3_server.make_bucket()
    adapter = (trained_output / "adapter").as_uri()
    local = (tmp_path / "exports").as_uri()
    request = spec(adapter, tiny_model, local, f"s3://{bucket}/exports/tiny")

    first = export_run(request, env=s3_server.env)
    assert first.exit_code == 0, first.termination
    assert first.termination["reason"] == "Succeeded"
    artifacts = first.artifacts
    assert [a["uri"] for a in artifacts] == [f"{local}/adapter", f"s3://{bucket}/exports/tiny/adapter"]
    assert [a["reused"] for a in artifacts] == [False, False]
    assert (
        artifacts[0]["sha256"] == artifacts[1]["sha256"] and artifacts[0]["digest"] == artifacts[1]["digest"]
    )
    assert first.status["artifacts"] == artifacts
    # The adapter's identity comes from the manifest the trainer uploaded; the base model was not fetched.
    manifest = parse_manifest((trained_output / "adapter" / "_MANIFEST.json").read_text(), "adapter")
    record = json.loads((tmp_path / "exports" / "adapter.tuneforge.json").read_text())
    assert record["identity"]["adapter"] == files_digest((e.path, e.sha256) for e in manifest.files)
    assert record["digest"] == artifacts[0]["digest"] and record["bytes"] == artifacts[0]["bytes"]
    assert not (first.workdir / "inputs" / "base").exists()
    # What landed is the adapter, whole, in both places.
    assert is_complete(f"{local}/adapter") and is_complete(f"s3://{bucket}/exports/tiny/adapter")
    fetched = fetch(f"s3://{bucket}/exports/tiny/adapter", tmp_path / "fetched")
    assert fetched.manifest
    original = (trained_output / "adapter" / "adapter_model.safetensors").read_bytes()
    assert (tmp_path / "fetched" / "adapter_model.safetensors").read_bytes() == original
    key = "exports/tiny/adapter/adapter_model.safetensors"
    before = (
        modified(s3_server, bucket, key),
        (tmp_path / "exports" / "adapter" / "adapter_config.json").stat(),
    )

    second = export_run(request, env=s3_server.env)
    assert second.exit_code == 0, second.termination
    assert [a["reused"] for a in second.artifacts] == [True, True]
    assert [a["digest"] for a in second.artifacts] == [a["digest"] for a in artifacts]
    assert "already at 2 destinations" in second.termination["message"]
    assert not (second.workdir / "inputs").exists() and not (second.workdir / "build").exists()
    after = (
        modified(s3_server, bucket, key),
        (tmp_path / "exports" / "adapter" / "adapter_config.json").stat(),
    )
    assert after[0] == before[0] and after[1].st_mtime_ns == before[1].st_mtime_ns


def test_merged_zip_to_s3_and_a_changed_adapter_is_built_again(
    tiny_model: Path, tiny_adapter: Path, make_lora: Any, s3_server: Any, export_run: Any, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket()
    request = spec(tiny_adapter.as_uri(), tiny_model, f"s3://{bucket}/out", format="merged", archive="zip")

    first = export_run(request, env=s3_server.env)
    assert first.exit_code == 0, first.termination
    (artifact,) = first.artifacts
    assert artifact["uri"] == f"s3://{bucket}/out/merged.zip" and artifact["format"] == "merged"
    assert s3_server.list_keys(bucket) == ["out/merged.zip", "out/merged.zip.tuneforge.json"]
    data = s3_server.get_object(bucket, "out/merged.zip")
    assert len(data) == artifact["bytes"]
    assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    with zipfile.ZipFile(BytesIO(data)) as archive:
        names = set(archive.namelist())
        weights = load(archive.read("model.safetensors"))
    assert {"config.json", "tokenizer.json", "tokenizer.model", "generation_config.json"} <= names
    assert "_MANIFEST.json" not in names
    base = load((tiny_model / "model.safetensors").read_bytes())
    assert not weights["model.layers.0.self_attn.q_proj.weight"].equal(
        base["model.layers.0.self_attn.q_proj.weight"]
    )
    assert weights["model.layers.0.mlp.up_proj.weight"].equal(base["model.layers.0.mlp.up_proj.weight"])

    other = make_lora(tiny_model, tmp_path / "other", seed=1)
    changed = export_run(
        {**request, "source": {**request["source"], "adapter": other.as_uri()}}, env=s3_server.env
    )
    assert changed.exit_code == 0, changed.termination
    (rebuilt,) = changed.artifacts
    assert rebuilt["reused"] is False and rebuilt["digest"] != artifact["digest"]
    assert rebuilt["sha256"] != artifact["sha256"]
    record = json.loads(s3_server.get_object(bucket, "out/merged.zip.tuneforge.json"))
    assert record["digest"] == rebuilt["digest"]


def test_a_zip_to_gcs_then_reused(
    trained_output: Path, tiny_model: Path, gcs_server: Any, export_run: Any
) -> None:
    bucket = gcs_server.make_bucket()
    adapter = (trained_output / "adapter").as_uri()
    request = spec(adapter, tiny_model, f"gs://{bucket}/zipped", archive="zip")
    run = export_run(request, env=gcs_server.env)
    assert run.exit_code == 0, run.termination
    assert gcs_server.list_keys(bucket) == ["zipped/adapter.zip", "zipped/adapter.zip.tuneforge.json"]
    data = gcs_server.get_object(bucket, "zipped/adapter.zip")
    assert hashlib.sha256(data).hexdigest() == run.artifacts[0]["sha256"]
    with zipfile.ZipFile(BytesIO(data)) as archive:
        assert "adapter_model.safetensors" in archive.namelist()
    again = export_run(request, env=gcs_server.env)
    assert again.exit_code == 0 and again.artifacts[0]["reused"] is True


def test_a_failed_upload_leaves_no_complete_artifact_and_no_record(
    tiny_model: Path, tiny_adapter: Path, s3_server: Any, s3_proxy: Any, export_run: Any
) -> None:
    """The store cuts every connection 1 MB into a request: the upload of the weights fails."""
    bucket = s3_server.make_bucket()
    folder = spec(tiny_adapter.as_uri(), tiny_model, f"s3://{bucket}/folder", format="merged")
    single = spec(tiny_adapter.as_uri(), tiny_model, f"s3://{bucket}/single", format="merged", archive="zip")
    s3_proxy.proxy.cut_after = 1_000_000

    for request in (folder, single):
        failed = export_run(request, env=s3_proxy.env)
        assert failed.exit_code == 1, failed.termination
        assert failed.termination["reason"] in ("Unreachable", "TransferFailed")
        assert failed.artifacts == []
    assert s3_proxy.proxy.cuts >= 2
    keys = s3_server.list_keys(bucket)
    # Small files of the folder went up before the weights failed; its manifest and the records did not.
    assert "folder/merged/config.json" in keys
    assert "folder/merged/_MANIFEST.json" not in keys and "folder/merged/model.safetensors" not in keys
    assert not [k for k in keys if k.endswith(".tuneforge.json")]
    # Nothing of the single file: no artifact, and no temporary object left behind.
    assert not [k for k in keys if k.startswith("single/")]

    s3_proxy.proxy.cut_after = None
    again = export_run(folder, env=s3_proxy.env)
    assert again.exit_code == 0 and again.artifacts[0]["reused"] is False
    assert "folder/merged/_MANIFEST.json" in s3_server.list_keys(bucket)


def test_a_killed_export_leaves_no_complete_artifact(
    tiny_model: Path, tiny_adapter: Path, s3_server: Any, s3_proxy: Any, storage_env: Any, export_run: Any
) -> None:
    """SIGKILL while the weights are on the wire: the folder never counts as complete; a rerun builds it."""
    bucket = s3_server.make_bucket()
    request = spec(tiny_adapter.as_uri(), tiny_model, f"s3://{bucket}/out", format="merged")
    s3_proxy.proxy.rate, s3_proxy.proxy.signal_after = 2_000_000, 2_000_000

    process, run = export_run.start(request, env=s3_proxy.env)
    try:
        assert s3_proxy.proxy.streaming.wait(120), process.stderr.read() if process.poll() is not None else ""
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(30)
        process.stderr.close()
    keys = s3_server.list_keys(bucket)
    assert "out/merged/config.json" in keys
    assert "out/merged/_MANIFEST.json" not in keys and "out/merged.tuneforge.json" not in keys
    storage_env(s3_server.env)
    assert not is_complete(f"s3://{bucket}/out/merged")

    s3_proxy.proxy.rate = s3_proxy.proxy.signal_after = None
    again = export_run(request, env=s3_server.env)
    assert again.exit_code == 0 and again.artifacts[0]["reused"] is False
    assert {"out/merged/_MANIFEST.json", "out/merged.tuneforge.json"} <= set(s3_server.list_keys(bucket))
