"""The Hub test double answers huggingface_hub as the Hub does: calls, headers and exception types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import HfApi, errors, hf_hub_download
from support.hubserver import HubServer

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")  # see test_hub_publish


@pytest.fixture(autouse=True)
def _double_served_everything(hub_server: HubServer) -> Iterator[None]:
    yield
    assert hub_server.unhandled == [] and hub_server.internal_errors == []


@pytest.fixture
def api(hub_env: dict[str, str], hub_server: HubServer, monkeypatch: pytest.MonkeyPatch) -> HfApi:
    # The library read HF_HUB_DISABLE_XET when this process first imported it; apply the test's value.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    return HfApi(endpoint=hub_server.endpoint, token=hub_server.add_token("hf_double_writer", ["double/*"]))


def test_upload_file_then_list_and_download_at_each_revision(
    api: HfApi, hub_server: HubServer, tmp_path: Path
) -> None:
    repo = hub_server.new_repo_id("roundtrip", org="double")
    api.create_repo(repo, private=True)
    first = api.upload_file(path_or_fileobj=b"one", path_in_repo="notes/a.txt", repo_id=repo)
    api.upload_file(path_or_fileobj=b"\0binary", path_in_repo="w.bin", repo_id=repo)
    (tmp_path / "folder" / "deep").mkdir(parents=True)
    (tmp_path / "folder" / "deep" / "b.txt").write_text("two")
    api.upload_folder(folder_path=tmp_path / "folder", path_in_repo="up", repo_id=repo)
    assert api.list_repo_files(repo) == [".gitattributes", "notes/a.txt", "up/deep/b.txt", "w.bin"]
    assert hub_server.lfs_paths(repo) == {"w.bin"}
    path = hf_hub_download(
        repo,
        "notes/a.txt",
        revision=first.oid,
        endpoint=hub_server.endpoint,
        token=api.token,
        local_dir=tmp_path,
    )
    assert Path(path).read_bytes() == b"one"
    assert api.model_info(repo).sha == hub_server.commit_sha(repo)
    with pytest.raises(errors.HfHubHTTPError) as exists:
        api.create_repo(repo)
    assert exists.value.response.status_code == 409


def test_the_hubs_error_types_come_through(api: HfApi, hub_server: HubServer) -> None:
    private = hub_server.create_repo(hub_server.new_repo_id("p", org="elsewhere"), private=True)
    gated = hub_server.create_repo(hub_server.new_repo_id("g", org="elsewhere"), gated=True)
    hub_server.seed(gated, {"a.txt": b"a"})
    anonymous = HfApi(endpoint=hub_server.endpoint, token=False)
    with pytest.raises(errors.RepositoryNotFoundError):  # 401 RepoNotFound, as the Hub hides private repos
        anonymous.model_info(private)
    with pytest.raises(errors.HfHubHTTPError) as forbidden:
        api.model_info(private)
    assert forbidden.value.response.status_code == 403
    with pytest.raises(errors.GatedRepoError):
        hf_hub_download(gated, "a.txt", endpoint=hub_server.endpoint, token=False)
    with pytest.raises(errors.RevisionNotFoundError):
        anonymous.model_info(gated, revision="nope")
    with pytest.raises(errors.RemoteEntryNotFoundError):
        hf_hub_download(
            gated, "b.txt", endpoint=hub_server.endpoint, token=hub_server.add_token("hf_g", [gated])
        )
    bad = HfApi(endpoint=hub_server.endpoint, token="hf_unknown")
    with pytest.raises(errors.HfHubHTTPError) as refused:
        bad.model_info(gated)
    assert refused.value.response.status_code == 401
