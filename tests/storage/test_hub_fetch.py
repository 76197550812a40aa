"""hf:// sources: a Hub repository (or a file or folder in it) at a revision, fetched from the Hub double."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.hubserver import HubServer

from tuneforge import exitcodes
from tuneforge.storage import StorageError, fetch
from tuneforge.termination import ENV as TERMINATION_ENV

TUNEFORGE = Path(sys.executable).parent / "tuneforge"
BuildEnv = Callable[..., dict[str, str]]

MODEL = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": os.urandom(150_000),  # LFS, as on the Hub
    "tokenizer/tokenizer.json": b'{"version": "1.0"}',
}
V2_CONFIG = b'{"model_type": "llama", "v": 2}'


@pytest.fixture(autouse=True)
def _double_served_everything(hub_server: HubServer) -> Iterator[None]:
    yield
    assert hub_server.unhandled == [] and hub_server.internal_errors == []


@pytest.fixture
def model_repo(hub_server: HubServer) -> tuple[str, str]:
    """A public model repo: tag v1 is MODEL, main has moved on to a new config. Returns (repo, v1 sha)."""
    repo = hub_server.new_repo_id("tiny")
    v1 = hub_server.seed(repo, MODEL, tag="v1")
    hub_server.seed(repo, {**MODEL, "config.json": V2_CONFIG})
    return repo, v1


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_model_repo_is_fetched_at_main_and_checked_against_the_hub(
    hub_env: dict[str, str], model_repo: tuple[str, str], hub_server: HubServer, tmp_path: Path
) -> None:
    repo, _ = model_repo
    result = fetch(f"hf://{repo}", tmp_path / "model")
    got = _tree(tmp_path / "model")
    assert got == hub_server.files(repo)
    assert got["config.json"] == V2_CONFIG and got["model.safetensors"] == MODEL["model.safetensors"]
    checks = {f.rel: f.check for f in result.files}
    assert checks["model.safetensors"] == "sha256"  # LFS: the Hub's sha256
    assert checks["config.json"] == checks["tokenizer/tokenizer.json"] == "sha1"  # git blob id
    assert result.bytes == sum(len(v) for v in got.values())


@pytest.mark.parametrize("revision", ["v1", "sha", "main"])
def test_the_revision_names_a_tag_a_commit_or_a_branch(
    hub_env: dict[str, str], model_repo: tuple[str, str], revision: str, tmp_path: Path
) -> None:
    repo, v1 = model_repo
    fetch(f"hf://{repo}", tmp_path / "model", revision=v1 if revision == "sha" else revision)
    expected = V2_CONFIG if revision == "main" else MODEL["config.json"]
    assert (tmp_path / "model" / "config.json").read_bytes() == expected


def test_a_file_or_a_folder_of_a_dataset_repo(
    hub_env: dict[str, str], hub_server: HubServer, tmp_path: Path
) -> None:
    repo = hub_server.new_repo_id("data")
    files = {"README.md": b"# data", "data/train.jsonl": b'{"a": 1}\n', "data/eval/eval.jsonl": b'{"a": 2}\n'}
    hub_server.seed(repo, files, repo_type="dataset")
    one = fetch(f"hf://datasets/{repo}/data/train.jsonl", tmp_path / "one")
    assert [f.rel for f in one.files] == ["train.jsonl"]
    assert _tree(tmp_path / "one") == {"train.jsonl": b'{"a": 1}\n'}
    fetch(f"hf://datasets/{repo}/data", tmp_path / "folder")
    assert _tree(tmp_path / "folder") == {"train.jsonl": b'{"a": 1}\n', "eval/eval.jsonl": b'{"a": 2}\n'}


@pytest.fixture
def guarded(hub_server: HubServer) -> dict[str, str]:
    """A private and a gated repo, and tokens: one for each, one for neither."""
    private = hub_server.create_repo(hub_server.new_repo_id("private"), private=True)
    gated = hub_server.create_repo(hub_server.new_repo_id("gated"), gated=True)
    for repo in (private, gated):
        hub_server.seed(repo, {"config.json": b"{}"})
    hub_server.add_token("hf_reader_of_private", [private], write=False)
    hub_server.add_token("hf_licence_accepted", [gated], write=False)
    hub_server.add_token("hf_no_grants", [], write=False)
    return {"private": private, "gated": gated}


@pytest.mark.parametrize(
    ("which", "token", "says"),
    [
        ("private", None, "does not exist or is private, and no token was given"),
        ("private", "hf_unknown_token", "the Hub refused the token in spec.model.tokenSecretRef"),
        (
            "private",
            "hf_no_grants",
            "has no access to {repo}; accept the model's licence on the Hub or use a token",
        ),
        ("gated", None, "{repo} is a gated model and no token was given; accept its licence"),
        (
            "gated",
            "hf_no_grants",
            "is a gated model and the token in spec.model.tokenSecretRef was not granted",
        ),
    ],
)
def test_private_and_gated_repos_refuse_a_missing_or_powerless_token(
    hub_env: dict[str, str],
    guarded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    token: str | None,
    says: str,
    tmp_path: Path,
) -> None:
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    repo = guarded[which]
    with pytest.raises(StorageError) as caught:
        fetch(f"hf://{repo}", tmp_path / "model")
    assert caught.value.reason == "AccessDenied"
    assert caught.value.exit_code == exitcodes.ACCESS_DENIED
    assert says.format(repo=repo) in str(caught.value)
    assert "spec.model.tokenSecretRef" in str(caught.value)
    assert not (tmp_path / "model").exists() or _tree(tmp_path / "model") == {}


@pytest.mark.parametrize(
    ("which", "token"), [("private", "hf_reader_of_private"), ("gated", "hf_licence_accepted")]
)
def test_a_token_with_access_fetches_private_and_gated_repos(
    hub_env: dict[str, str],
    guarded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    token: str,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("HF_TOKEN", token)
    fetch(f"hf://{guarded[which]}", tmp_path / "model")
    assert (tmp_path / "model" / "config.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    ("source", "revision", "says"),
    [
        ("hf://tuneforge-tests/no-such-model", None, "does not exist on http://127.0.0.1"),
        (
            "hf://{repo}",
            "no-such-branch",
            "revision 'no-such-branch' does not exist in {repo}; set spec.model.revision",
        ),
        (
            "hf://{repo}/no/such/file.json",
            None,
            "'no/such/file.json' does not exist in {repo} at revision main",
        ),
    ],
)
def test_missing_repos_revisions_and_paths_are_not_found(
    hub_env: dict[str, str],
    hub_server: HubServer,
    model_repo: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    revision: str | None,
    says: str,
    tmp_path: Path,
) -> None:
    # With a valid token the Hub answers 404 for a missing repo (without one, 401: it cannot tell).
    monkeypatch.setenv("HF_TOKEN", hub_server.add_token("hf_any_valid_token"))
    repo, _ = model_repo
    with pytest.raises(StorageError) as caught:
        fetch(source.format(repo=repo), tmp_path / "model", revision=revision)
    assert (caught.value.reason, caught.value.exit_code) == ("NotFound", exitcodes.NOT_FOUND)
    assert says.format(repo=repo) in str(caught.value)


def test_an_unreachable_hub_is_a_retryable_failure(
    hub_env: dict[str, str], closed_port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(StorageError) as caught:
        fetch("hf://org/model", tmp_path / "model")
    assert (caught.value.reason, caught.value.exit_code) == ("Unreachable", exitcodes.FAILED)
    assert f"cannot reach the Hub at http://127.0.0.1:{closed_port}" in str(caught.value)


def test_a_download_that_does_not_match_the_hubs_listing_is_refused(
    hub_env: dict[str, str], hub_server: HubServer, tmp_path: Path
) -> None:
    repo = hub_server.new_repo_id("damaged")
    weights = os.urandom(20_000)
    hub_server.seed(repo, {"config.json": b"{}", "model.safetensors": weights})
    # The LFS store now serves other bytes of the same size than the listing describes.
    hub_server.state.lfs[next(k for k, v in hub_server.state.lfs.items() if v == weights)] = os.urandom(
        20_000
    )
    with pytest.raises(StorageError) as caught:
        fetch(f"hf://{repo}", tmp_path / "model")
    assert caught.value.reason == "Corrupt"
    assert "model.safetensors: sha256" in str(caught.value) and "does not match the Hub's" in str(
        caught.value
    )
    assert _tree(tmp_path / "model") == {}  # nothing half-fetched is visible


def test_a_revision_is_refused_for_other_schemes(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    with pytest.raises(StorageError, match="applies to hf:// sources only") as caught:
        fetch(f"file://{tmp_path}/src", tmp_path / "dest", revision="main")
    assert caught.value.reason == "InvalidUri"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TUNEFORGE), "fetch", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_fetch_command_takes_a_revision_and_a_token_from_the_environment(
    hub_env: dict[str, str],
    guarded: dict[str, str],
    model_repo: tuple[str, str],
    subprocess_env: BuildEnv,
    tmp_path: Path,
) -> None:
    repo, _ = model_repo
    done = _run(["--revision", "v1", f"hf://{repo}", str(tmp_path / "model")], subprocess_env())
    assert done.returncode == exitcodes.OK, done.stderr
    assert (tmp_path / "model" / "config.json").read_bytes() == MODEL["config.json"]
    assert any("model.safetensors" in line and "sha256 ok" in line for line in done.stdout.splitlines())
    assert "3 by the Hub's git blob id, 1 by sha256" in done.stdout.splitlines()[-1]

    termination = tmp_path / "termination-log"
    env = subprocess_env(HF_TOKEN="hf_no_grants", **{TERMINATION_ENV: str(termination)})
    refused = _run([f"hf://{guarded['gated']}", str(tmp_path / "gated")], env)
    assert refused.returncode == exitcodes.ACCESS_DENIED
    message = json.loads(termination.read_text())
    assert message["reason"] == "AccessDenied" and "gated model" in message["message"]
    assert "Traceback" not in refused.stderr
    assert "hf_no_grants" not in refused.stdout + refused.stderr + termination.read_text()
