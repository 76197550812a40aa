"""``tuneforge export`` of GGUF artifacts: merged, converted, verified, published; the merged model kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tuneforge.exporter.card import front_matter
from tuneforge.exporter.gguf import llama_cpp_version

pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning"),  # huggingface_hub's LFS upload
]

GGUF_MAGIC = b"GGUF"


def test_gguf_to_a_bucket_and_the_hub_keeps_the_merged_model_for_a_later_merged_export(
    tiny_model: Path,
    tiny_adapter: Path,
    hub_server: Any,
    hub_env: dict[str, str],
    export_run: Any,
    tmp_path: Path,
) -> None:
    adapter = tmp_path / "run" / "adapter"  # the merged-model cache goes to tmp_path/run/exports/merged
    shutil.copytree(tiny_adapter, adapter)
    token = hub_server.add_token("hf_tuneforge_gguf", repos=["tuneforge-tests/*"], write=True)
    repo = hub_server.new_repo_id("gguf")
    source = {"adapter": adapter.as_uri(), "baseModel": tiny_model.as_uri()}
    gguf = {
        "source": source,
        "format": "gguf",
        "destinations": [
            {"uri": (tmp_path / "bucket").as_uri()},
            {"huggingface": {"repo": repo, "private": False, "tokenSecretRef": {"name": "hub"}}},
        ],
    }

    run = export_run(gguf, env={"HF_TOKEN_DESTINATION_1": token})
    assert run.exit_code == 0, run.termination
    local, hub = run.artifacts
    version = llama_cpp_version()
    assert (
        local["uri"] == (tmp_path / "bucket" / "model-q8_0.gguf").as_uri()
        and hub["uri"] == f"hf://{repo}/model-q8_0.gguf"
    )
    assert local["quantization"] == hub["quantization"] == "q8_0"
    assert local["llamaCppVersion"] == hub["llamaCppVersion"] == version
    assert local["sha256"] == hub["sha256"] and local["digest"] == hub["digest"]
    data = (tmp_path / "bucket" / "model-q8_0.gguf").read_bytes()
    assert data[:4] == GGUF_MAGIC and len(data) == local["bytes"]
    files = hub_server.files(repo)
    assert files["model-q8_0.gguf"] == data  # at the top level of the repository
    assert front_matter(files["README.md"].decode())["library_name"] == "gguf"
    assert json.loads(files["model-q8_0.gguf.tuneforge.json"])["llamaCppVersion"] == version
    log = (run.workdir / "export.log").read_text()
    assert "verification passed" in log
    assert "converter started ahead" in log  # its imports overlapped the fetch and the merge
    # The merged model it was made from is kept beside the adapter's run output.
    cache = tmp_path / "run" / "exports"
    assert (cache / "merged" / "_MANIFEST.json").is_file() and (cache / "merged.tuneforge.json").is_file()

    merged = export_run(
        {**gguf, "format": "merged", "destinations": [{"uri": (tmp_path / "bucket").as_uri()}]}
    )
    assert merged.exit_code == 0, merged.termination
    assert merged.artifacts[0]["reused"] is False
    assert "using the merged model from the merged-model cache" in (merged.workdir / "export.log").read_text()
    assert not (merged.workdir / "inputs" / "base").exists()  # neither the base model fetched nor a merge
    cached = json.loads((cache / "merged" / "_MANIFEST.json").read_text())["files"]
    published = json.loads((tmp_path / "bucket" / "merged" / "_MANIFEST.json").read_text())["files"]
    assert cached == published


def test_adapter_gguf_is_verified_against_the_merged_model(
    tiny_model: Path, tiny_adapter: Path, export_run: Any, tmp_path: Path
) -> None:
    spec = {
        "source": {"adapter": tiny_adapter.as_uri(), "baseModel": tiny_model.as_uri()},
        "format": "adapter-gguf",
        "destinations": [{"uri": (tmp_path / "bucket").as_uri()}],
    }
    run = export_run(spec)
    assert run.exit_code == 0, run.termination
    (artifact,) = run.artifacts
    assert artifact["uri"].endswith("/adapter-f16.gguf") and artifact["quantization"] == "f16"
    assert (tmp_path / "bucket" / "adapter-f16.gguf").read_bytes()[:4] == GGUF_MAGIC
    log = (run.workdir / "export.log").read_text()
    assert "GGUF f16 verification passed" in log
    assert any("convert_lora_to_gguf.py" in line and "started ahead" in line for line in log.splitlines())
    assert not (run.workdir / "build" / "base-f16.gguf").exists()  # the base GGUF made for the check is gone
