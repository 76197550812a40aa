"""The shared model cache (``tuneforge fetch --cache-dir``): one download per source and version."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.hubserver import HubServer

from tuneforge import exitcodes
from tuneforge.storage.cache import MARKER, cache_key, complete_marker, fetch_cached, source_identity

TUNEFORGE = Path(sys.executable).parent / "tuneforge"
BuildEnv = Callable[..., dict[str, str]]
WEIGHTS = "model.safetensors"


@pytest.fixture(autouse=True)
def _double_served_everything(hub_server: HubServer) -> Iterator[None]:
    yield
    assert hub_server.unhandled == [] and hub_server.internal_errors == []


@pytest.fixture
def repo(hub_server: HubServer) -> str:
    """A model repo whose tag v1 and branch main differ."""
    repo_id = hub_server.new_repo_id("cached")
    files = {"config.json": b'{"v": 1}', WEIGHTS: os.urandom(60_000)}
    hub_server.seed(repo_id, files, tag="v1")
    hub_server.seed(repo_id, {**files, "config.json": b'{"v": 2}'})
    return repo_id


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _entries(cache: Path) -> list[Path]:
    """Complete entries only."""
    return sorted(p for p in cache.iterdir() if p.is_dir() and (p / MARKER).is_file())


def test_the_same_source_and_revision_is_downloaded_once_and_hard_linked(
    hub_env: dict[str, str], hub_server: HubServer, repo: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = fetch_cached(f"hf://{repo}", tmp_path / "job-1", cache_dir=cache, revision="v1")
    served = hub_server.downloads(repo)
    assert sorted(set(served)) == sorted(served) == [".gitattributes", "config.json", WEIGHTS]
    second = fetch_cached(f"hf://{repo}", tmp_path / "job-2", cache_dir=cache, revision="v1")
    assert hub_server.downloads(repo) == served  # not one byte more
    assert (first.hit, second.hit) == (False, True)
    assert second.linked and second.entry == first.entry and second.entry is not None
    assert _tree(tmp_path / "job-1") == _tree(tmp_path / "job-2") == hub_server.files(repo, "v1")
    weights, cached = tmp_path / "job-2" / WEIGHTS, second.entry / "files" / WEIGHTS
    assert weights.stat().st_ino == cached.stat().st_ino  # the same bytes on disk
    assert not os.access(cached, os.W_OK) or os.getuid() == 0  # nobody writes through a link
    assert cached.stat().st_mode & 0o222 == 0
    assert {f.rel: f.check for f in second.result.files}[WEIGHTS] == "sha256"


def test_another_revision_or_a_moved_branch_is_another_entry(
    hub_env: dict[str, str], hub_server: HubServer, repo: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    fetch_cached(f"hf://{repo}", tmp_path / "a", cache_dir=cache, revision="v1")
    fetch_cached(f"hf://{repo}", tmp_path / "b", cache_dir=cache)  # main
    assert hub_server.downloads(repo).count("config.json") == 2
    assert (tmp_path / "b" / "config.json").read_bytes() == b'{"v": 2}'
    hub_server.seed(repo, {"config.json": b'{"v": 3}'})  # main moves on
    moved = fetch_cached(f"hf://{repo}", tmp_path / "c", cache_dir=cache, revision="main")
    assert not moved.hit and (tmp_path / "c" / "config.json").read_bytes() == b'{"v": 3}'
    assert len(_entries(cache)) == 3


def test_a_store_folder_is_keyed_by_its_listing(tmp_path: Path) -> None:
    source = tmp_path / "models" / "tiny"
    source.mkdir(parents=True)
    (source / "config.json").write_text('{"v": 1}')
    cache = tmp_path / "cache"
    assert not fetch_cached(f"file://{source}", tmp_path / "a", cache_dir=cache).hit
    assert fetch_cached(f"file://{source}", tmp_path / "b", cache_dir=cache).hit
    (source / "config.json").write_text('{"v": 22}')  # changed content: not served stale
    changed = fetch_cached(f"file://{source}", tmp_path / "c", cache_dir=cache)
    assert not changed.hit and (tmp_path / "c" / "config.json").read_text() == '{"v": 22}'


@pytest.mark.skipif(
    not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tempfile.gettempdir()).st_dev,
    reason="needs /dev/shm on another filesystem than the temporary folder",
)
def test_dest_on_another_filesystem_gets_copies(tmp_path: Path) -> None:
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text("{}")
    cache = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="tuneforge-cache-"))
    try:
        fetch_cached(f"file://{source}", tmp_path / "a", cache_dir=cache)
        again = fetch_cached(f"file://{source}", tmp_path / "b", cache_dir=cache)
        assert again.hit and not again.linked
        assert (tmp_path / "b" / "config.json").read_text() == "{}"
        assert os.access(tmp_path / "b" / "config.json", os.W_OK)  # a copy is the job's own
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(TUNEFORGE), "fetch", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_killed_fetch_leaves_no_complete_entry(
    hub_env: dict[str, str], hub_server: HubServer, repo: str, subprocess_env: BuildEnv, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    hold = hub_server.hold(repo, WEIGHTS)
    killed = _start(
        [f"hf://{repo}", str(tmp_path / "a"), "--cache-dir", str(cache)], subprocess_env(), tmp_path / "a.log"
    )
    try:
        assert hold.reached.wait(30), (tmp_path / "a.log").read_text()
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(10) == -signal.SIGKILL
    finally:
        hub_server.unhold(repo, WEIGHTS)
    key = cache_key(f"hf://{repo}", source_identity(f"hf://{repo}") or "")
    assert complete_marker(cache / key) is None and _entries(cache) == []
    assert list(cache.glob(f".partial-{key}-*"))  # what it left behind...

    again = fetch_cached(f"hf://{repo}", tmp_path / "b", cache_dir=cache)
    assert not again.hit and again.entry == cache / key
    assert _tree(tmp_path / "b") == hub_server.files(repo)
    assert list(cache.glob(f".partial-{key}-*")) == []  # ...is cleaned up by the next filler


def test_concurrent_fetches_of_the_same_model_download_it_once(
    hub_env: dict[str, str], hub_server: HubServer, repo: str, subprocess_env: BuildEnv, tmp_path: Path
) -> None:
    cache, env = tmp_path / "cache", subprocess_env()
    hold = hub_server.hold(repo, WEIGHTS)
    try:
        first = _start(
            [f"hf://{repo}", str(tmp_path / "a"), "--cache-dir", str(cache)], env, tmp_path / "a.log"
        )
        assert hold.reached.wait(30), (tmp_path / "a.log").read_text()
        second = _start(
            [f"hf://{repo}", str(tmp_path / "b"), "--cache-dir", str(cache)], env, tmp_path / "b.log"
        )
        _wait_for(
            lambda: "waiting for another fetch" in (tmp_path / "b.log").read_text(),
            "the second fetch to wait",
        )
    finally:
        hub_server.unhold(repo, WEIGHTS)
    assert first.wait(60) == exitcodes.OK, (tmp_path / "a.log").read_text()
    assert second.wait(60) == exitcodes.OK, (tmp_path / "b.log").read_text()
    assert "added to the model cache" in (tmp_path / "a.log").read_text()
    assert "found in the model cache" in (tmp_path / "b.log").read_text()
    assert hub_server.downloads(repo).count(WEIGHTS) == 1
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b") == hub_server.files(repo)
