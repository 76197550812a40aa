"""``tuneforge export`` to a Hugging Face Hub repository (the Hub test double): card, reuse, tokens."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tuneforge.exporter.card import front_matter

pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
    # huggingface_hub's LFS upload hands httpx raw bytes, which httpx deprecates.
    pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning"),
]

LICENSED_README = "---\nlicense: apache-2.0\ntags: [base]\n---\n# A base model\n"


def hub_spec(adapter: Path, base: Path, repo: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"adapter": adapter.as_uri(), "baseModel": base.as_uri()},
        "destinations": [{"huggingface": {"repo": repo, "private": True, "tokenSecretRef": {"name": "hub"}}}],
        **extra,
    }


@pytest.fixture
def licensed_base(tiny_model: Path, tmp_path: Path) -> Path:
    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    (base / "README.md").write_text(LICENSED_README, encoding="utf-8")
    return base


def test_adapter_to_a_private_repo_with_a_model_card_then_reused(
    trained_output: Path, licensed_base: Path, hub_server: Any, hub_env: dict[str, str], export_run: Any
) -> None:
    token = hub_server.add_token("hf_tuneforge_writer", repos=["tuneforge-tests/*"], write=True)
    repo = hub_server.new_repo_id("adapter")
    request = hub_spec(trained_output / "adapter", licensed_base, repo)

    first = export_run(request, env={"HF_TOKEN_DESTINATION_0": token})
    assert first.exit_code == 0, first.termination
    (artifact,) = first.artifacts
    assert artifact["destination"] == artifact["uri"] == f"hf://{repo}" and artifact["reused"] is False
    assert hub_server.is_private(repo)
    files = hub_server.files(repo)
    adapter = trained_output / "adapter"
    assert files["adapter_model.safetensors"] == (adapter / "adapter_model.safetensors").read_bytes()
    assert files["adapter_config.json"] == (adapter / "adapter_config.json").read_bytes()
    assert "_MANIFEST.json" not in files
    record = json.loads(files["adapter.tuneforge.json"])
    assert record["digest"] == artifact["digest"] and record["files"]["adapter_model.safetensors"]
    card = files["README.md"].decode()
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "peft" and "tuneforge" in meta["tags"]
    assert "base_model" not in meta  # a file:// base is not a Hub id
    assert "| maxSteps | 4 |" in card and "| trainLoss |" in card  # from the FineTuneJob's run record
    assert "`alpaca-sample.jsonl` (from a private store)" in card
    assert str(licensed_base) not in card  # no local or bucket paths on the Hub
    commit = hub_server.commit_sha(repo)

    second = export_run(request, env={"HF_TOKEN_DESTINATION_0": token})
    assert second.exit_code == 0, second.termination
    assert second.artifacts[0]["reused"] is True and second.artifacts[0]["digest"] == artifact["digest"]
    assert hub_server.commit_sha(repo) == commit
    assert not (second.workdir / "inputs").exists()


def test_a_refused_token_fails_clearly_and_is_not_shown(
    tiny_adapter: Path, tiny_model: Path, hub_server: Any, hub_env: dict[str, str], export_run: Any
) -> None:
    hub_server.add_token("hf_tuneforge_reader", repos=["tuneforge-tests/*"], write=False)
    repo = hub_server.new_repo_id("refused")
    run = export_run(
        hub_spec(tiny_adapter, tiny_model, repo), env={"HF_TOKEN_DESTINATION_0": "hf_tuneforge_reader"}
    )
    assert run.exit_code == 5, run.termination
    assert run.termination["reason"] == "AccessDenied"
    assert "spec.destinations[0].huggingface.tokenSecretRef" in run.termination["message"]
    assert "hf_tuneforge_reader" not in run.termination["message"]
    assert run.artifacts == []
