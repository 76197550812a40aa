"""publish_to_hub() and hub_file_sha256() against the Hub double: what the exporter calls."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hubserver import HubServer

from tuneforge import exitcodes
from tuneforge.storage import StorageError, hub_file_sha256, publish_to_hub

# huggingface_hub 2.4's LFS upload passes bytes as data= to httpx2, which deprecates it (not ours to fix).
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

CARD = "---\nlicense: apache-2.0\nbase_model: tuneforge-tests/tiny\n---\n# tiny, fine-tuned\n"
WRITER = "hf_writer_tuneforge_tests"


@pytest.fixture(autouse=True)
def _double_served_everything(hub_server: HubServer) -> Iterator[None]:
    yield
    assert hub_server.unhandled == [] and hub_server.internal_errors == []


@pytest.fixture
def writer(hub_server: HubServer) -> str:
    return hub_server.add_token(WRITER, ["tuneforge-tests/*"], write=True)


@pytest.fixture
def merged(tmp_path: Path) -> Path:
    folder = tmp_path / "merged"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(os.urandom(80_000))
    (folder / "tokenizer" / "tokenizer.json").write_text("{}")
    (folder / "_MANIFEST.json").write_text("{}")  # a storage-layer commit point: not for the Hub
    return folder


def test_a_folder_is_published_to_a_new_private_repo_with_its_card_in_one_commit(
    hub_env: dict[str, str], hub_server: HubServer, writer: str, merged: Path
) -> None:
    repo = hub_server.new_repo_id("merged")
    result = publish_to_hub(
        merged, repo, token=writer, private=True, readme=CARD, commit_message="Tuneforge export merged"
    )
    assert result.created and hub_server.is_private(repo)
    assert result.commit_sha == hub_server.commit_sha(repo)
    assert hub_server.commit_title(repo) == "Tuneforge export merged"
    files = hub_server.files(repo)
    assert files["README.md"] == CARD.encode()
    assert files["model.safetensors"] == (merged / "model.safetensors").read_bytes()
    assert files["tokenizer/tokenizer.json"] == b"{}"
    assert "_MANIFEST.json" not in files
    assert "model.safetensors" in hub_server.lfs_paths(repo)
    assert result.uri == f"hf://{repo}"
    assert result.repo_url == f"{hub_server.endpoint}/{repo}"
    assert result.commit_url == f"{hub_server.endpoint}/{repo}/commit/{result.commit_sha}"
    by_path = {f.path: f for f in result.files}
    weights = by_path["model.safetensors"]
    assert weights.sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert weights.url == f"{hub_server.endpoint}/{repo}/resolve/{result.commit_sha}/model.safetensors"
    assert set(by_path) == set(files) - {".gitattributes"}


def test_a_gguf_file_lands_at_the_top_level_and_republishing_makes_no_new_commit(
    hub_env: dict[str, str], hub_server: HubServer, writer: str, tmp_path: Path
) -> None:
    gguf = tmp_path / "out" / "tiny-q8_0.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + os.urandom(40_000))
    repo = hub_server.new_repo_id("gguf")
    first = publish_to_hub(gguf, repo, token=writer, private=False, readme=CARD, commit_message="GGUF q8_0")
    assert sorted(hub_server.files(repo)) == [".gitattributes", "README.md", "tiny-q8_0.gguf"]
    again = publish_to_hub(gguf, repo, token=writer, private=False, readme=CARD, commit_message="again")
    assert again.commit_sha == first.commit_sha and not again.created
    assert (
        hub_file_sha256(repo, "tiny-q8_0.gguf", token=writer) == hashlib.sha256(gguf.read_bytes()).hexdigest()
    )
    assert hub_file_sha256(repo, "README.md", token=writer) == hashlib.sha256(CARD.encode()).hexdigest()
    assert hub_file_sha256(repo, "missing.gguf", token=writer) is None
    assert hub_file_sha256(hub_server.new_repo_id("never-made"), "x.gguf", token=writer) is None
    assert hub_file_sha256(repo, "tiny-q8_0.gguf", token=writer, revision="no-such-branch") is None


def test_a_subfolder_in_the_repo_takes_the_files(
    hub_env: dict[str, str], hub_server: HubServer, writer: str, merged: Path
) -> None:
    repo = hub_server.new_repo_id("nested")
    publish_to_hub(
        merged, repo, token=writer, private=True, readme=None, path_in_repo="merged/", commit_message="nested"
    )
    assert sorted(hub_server.files(repo)) == [
        ".gitattributes",
        "merged/config.json",
        "merged/model.safetensors",
        "merged/tokenizer/tokenizer.json",
    ]


def test_a_private_artifact_never_goes_into_an_existing_public_repo(
    hub_env: dict[str, str], hub_server: HubServer, writer: str, merged: Path
) -> None:
    repo = hub_server.create_repo(hub_server.new_repo_id("public"), private=False)
    before = hub_server.commit_sha(repo)
    with pytest.raises(StorageError, match="exists and is public, but the destination asks for a private"):
        publish_to_hub(merged, repo, token=writer, private=True, readme=CARD, commit_message="x")
    assert hub_server.commit_sha(repo) == before


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("hf_not_a_token", "the Hub refused the token in spec.destinations[0].huggingface.tokenSecretRef"),
        ("hf_read_only", "may not write to {repo}; use a token with write access to the 'tuneforge-tests'"),
        ("", "no token; set spec.destinations[0].huggingface.tokenSecretRef"),
    ],
)
def test_a_wrong_or_read_only_token_is_refused_naming_the_field(
    hub_env: dict[str, str], hub_server: HubServer, merged: Path, token: str, says: str
) -> None:
    hub_server.add_token("hf_read_only", ["tuneforge-tests/*"], write=False)
    repo = hub_server.create_repo(hub_server.new_repo_id("guarded"), private=True)
    before = hub_server.commit_sha(repo)
    field = "spec.destinations[0].huggingface.tokenSecretRef"
    with pytest.raises(StorageError) as caught:
        publish_to_hub(
            merged, repo, token=token, private=True, readme=CARD, commit_message="x", token_field=field
        )
    assert (caught.value.reason, caught.value.exit_code) == ("AccessDenied", exitcodes.ACCESS_DENIED)
    assert says.format(repo=repo) in str(caught.value)
    assert hub_server.commit_sha(repo) == before
    if token:
        assert token not in str(caught.value)


def test_bad_arguments_are_refused_before_any_request(hub_env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such file or folder") as missing:
        publish_to_hub(
            tmp_path / "nope", "org/name", token="t", private=True, readme=None, commit_message="x"
        )
    assert missing.value.reason == "NotFound"
    with pytest.raises(StorageError, match="not a valid Hub namespace or repository name") as bad_id:
        publish_to_hub(tmp_path, "org/bad--name", token="t", private=True, readme=None, commit_message="x")
    assert bad_id.value.reason == "InvalidUri"
