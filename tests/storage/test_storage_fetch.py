"""fetch() and upload_tree() against file://, s3:// (SeaweedFS) and gs:// (emulator)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tuneforge import exitcodes
from tuneforge.storage import MANIFEST_NAME, StorageError, fetch, is_complete, read_text, upload_tree

if TYPE_CHECKING:
    from storage.conftest import Store

TREE = {
    "config.json": b'{"model_type": "llama"}',
    "tokenizer/tokenizer.model": b"\x00\x01sentencepiece",
    "weights/shard-1/model.safetensors": os.urandom(200_000),
    "weights/empty.bin": b"",
}


def _everything_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _make_local_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_fetch_one_object_lands_under_its_name(store: Store, tmp_path: Path) -> None:
    store.put("model/config.json", b'{"a": 1}')
    result = fetch(store.uri("model/config.json"), tmp_path / "dest")
    assert _everything_under(tmp_path / "dest") == {"config.json": b'{"a": 1}'}
    (only,) = result.files
    assert (only.rel, only.size, only.path) == ("config.json", 8, tmp_path / "dest" / "config.json")
    assert only.check == ("md5" if store.scheme == "gs" else "size")
    assert result.bytes == 8 and result.manifest is False


@pytest.mark.parametrize("suffix", ["model", "model/"])
def test_fetch_a_folder_keeps_its_nested_layout(store: Store, tmp_path: Path, suffix: str) -> None:
    for rel, data in TREE.items():
        store.put(f"model/{rel}", data)
    store.put("model-other/not-this.txt", b"sibling prefix must not leak in")
    dest = tmp_path / "dest"
    result = fetch(store.uri(suffix), dest)
    assert _everything_under(dest) == TREE
    assert sorted(f.rel for f in result.files) == sorted(TREE)
    assert result.bytes == sum(len(d) for d in TREE.values())
    assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_upload_tree_then_fetch_verifies_every_file_against_the_manifest(
    store: Store, tmp_path: Path
) -> None:
    local = _make_local_tree(tmp_path / "local", TREE)
    uploaded = upload_tree(local, store.uri("run/adapter"))
    assert store.keys() == sorted([*(f"run/adapter/{rel}" for rel in TREE), f"run/adapter/{MANIFEST_NAME}"])
    assert is_complete(store.uri("run/adapter"))
    assert uploaded.bytes == sum(len(d) for d in TREE.values())
    assert uploaded.manifest_uri == store.uri(f"run/adapter/{MANIFEST_NAME}")

    manifest = json.loads(read_text(uploaded.manifest_uri))
    assert {e["path"]: e["size"] for e in manifest["files"]} == {rel: len(d) for rel, d in TREE.items()}

    result = fetch(store.uri("run/adapter"), tmp_path / "dest")
    assert result.manifest is True
    fetched = _everything_under(tmp_path / "dest")
    assert {rel: fetched[rel] for rel in TREE} == TREE
    assert {f.rel: f.check for f in result.files if f.rel != MANIFEST_NAME} == dict.fromkeys(TREE, "sha256")
    by_rel = {f.rel: f.sha256 for f in result.files}
    assert all(by_rel[e["path"]] == e["sha256"] for e in manifest["files"])


def test_fetch_of_one_file_checks_it_against_its_folders_manifest(store: Store, tmp_path: Path) -> None:
    upload_tree(_make_local_tree(tmp_path / "local", TREE), store.uri("ds"))
    result = fetch(store.uri("ds/config.json"), tmp_path / "ok")
    assert result.manifest is True and result.files[0].check == "sha256"

    store.put("ds/config.json", b'{"model_type": "gpt2!"}')  # same size, other bytes
    with pytest.raises(StorageError) as caught:
        fetch(store.uri("ds/config.json"), tmp_path / "bad")
    assert caught.value.reason == "Corrupt"
    assert not (tmp_path / "bad" / "config.json").exists()


@pytest.mark.parametrize(
    ("tampered", "says"),
    [(b"\xff" * 200_000, "does not match"), (b"short", "the store holds 5 bytes")],
    ids=["same-size", "other-size"],
)
def test_a_file_changed_after_upload_fails_the_fetch_and_leaves_nothing(
    store: Store, tmp_path: Path, tampered: bytes, says: str
) -> None:
    upload_tree(_make_local_tree(tmp_path / "local", TREE), store.uri("m"))
    store.put("m/weights/shard-1/model.safetensors", tampered)
    dest = tmp_path / "dest"
    with pytest.raises(StorageError) as caught:
        fetch(store.uri("m"), dest)
    err = caught.value
    assert err.reason == "Corrupt" and err.exit_code == exitcodes.FAILED
    assert "weights/shard-1/model.safetensors" in str(err) and says in str(err)
    assert "upload it again" in str(err)
    assert not dest.exists() or list(dest.rglob("*")) == []


def test_a_manifest_listing_a_missing_file_is_corrupt(store: Store, tmp_path: Path) -> None:
    store.put("m/a.txt", b"a")
    ghost = {"path": "b.txt", "size": 1, "sha256": "0" * 64}
    store.put(f"m/{MANIFEST_NAME}", json.dumps({"version": 1, "files": [ghost]}).encode())
    with pytest.raises(StorageError) as caught:
        fetch(store.uri("m"), tmp_path / "dest")
    assert caught.value.reason == "Corrupt"
    assert "lists 1 file(s) not in the store, e.g. 'b.txt'" in str(caught.value)


def test_an_invalid_manifest_names_the_bad_field(store: Store, tmp_path: Path) -> None:
    store.put("m/a.txt", b"a")
    bad = {"version": 1, "files": [{"path": "../escape", "size": 1, "sha256": "0" * 64}]}
    store.put(f"m/{MANIFEST_NAME}", json.dumps(bad).encode())
    with pytest.raises(StorageError) as caught:
        fetch(store.uri("m"), tmp_path / "dest")
    assert caught.value.reason == "Corrupt"
    assert f"{MANIFEST_NAME} is not a valid manifest: files.0.path" in str(caught.value)


def test_missing_object_is_not_found(store: Store, tmp_path: Path) -> None:
    store.put("present.txt", b"x")
    with pytest.raises(StorageError) as caught:
        fetch(store.uri("absent/model"), tmp_path / "dest")
    err = caught.value
    assert err.reason == "NotFound" and err.exit_code == exitcodes.NOT_FOUND
    assert store.uri("absent/model") in str(err)
    assert "no object or folder at this URI" in str(err)
    assert not (tmp_path / "dest").exists() or list((tmp_path / "dest").iterdir()) == []


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_missing_bucket_is_not_found_and_says_so(
    scheme: str,
    request: pytest.FixtureRequest,
    storage_env: Callable[[Mapping[str, str]], None],
    tmp_path: Path,
) -> None:
    server = request.getfixturevalue("s3_server" if scheme == "s3" else "gcs_server")
    storage_env(server.env)
    with pytest.raises(StorageError) as caught:
        fetch(f"{scheme}://no-such-bucket-here/model", tmp_path / "dest")
    assert caught.value.reason == "NotFound"
    assert "bucket 'no-such-bucket-here' does not exist" in str(caught.value)
    assert server.endpoint in str(caught.value)

    empty = server.make_bucket()
    with pytest.raises(StorageError, match="no files under this folder") as caught:
        fetch(f"{scheme}://{empty}", tmp_path / "dest")
    assert caught.value.reason == "NotFound"


def test_an_empty_local_folder_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="no files under this folder") as caught:
        fetch(f"file://{tmp_path}/empty", tmp_path / "dest")
    assert caught.value.reason == "NotFound"


def test_relative_file_uris_read_and_write_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _make_local_tree(tmp_path / "data", {"train.jsonl": b'{"text": "hi"}\n', "eval/e.jsonl": b"{}\n"})
    fetch("file://data", Path("out"))
    assert _everything_under(tmp_path / "out") == {
        "train.jsonl": b'{"text": "hi"}\n',
        "eval/e.jsonl": b"{}\n",
    }
    fetch("file://./data/train.jsonl", Path("single"))
    assert (tmp_path / "single" / "train.jsonl").exists()
    upload_tree(Path("data"), "file://published/run1")
    assert is_complete("file://published/run1")
    assert (tmp_path / "published" / "run1" / MANIFEST_NAME).exists()


def test_fetch_again_replaces_files_and_clears_a_killed_fetchs_leftovers(tmp_path: Path) -> None:
    src = _make_local_tree(tmp_path / "src", {"a.txt": b"new"})
    dest = tmp_path / "dest"
    _make_local_tree(dest, {"a.txt": b"old", ".tuneforge-fetch-dead/a.txt": b"partial"})
    fetch(f"file://{src}", dest)
    assert _everything_under(dest) == {"a.txt": b"new"}


def test_fetch_into_a_file_is_refused(tmp_path: Path) -> None:
    src = _make_local_tree(tmp_path / "src", {"a.txt": b"a"})
    (tmp_path / "dest").write_text("I am a file")
    with pytest.raises(StorageError, match="it is a file, not a folder"):
        fetch(f"file://{src}", tmp_path / "dest")


def test_upload_tree_replaces_an_older_upload_and_its_manifest(store: Store, tmp_path: Path) -> None:
    upload_tree(_make_local_tree(tmp_path / "v1", {"a.txt": b"one", "b.txt": b"two"}), store.uri("out"))
    v2 = _make_local_tree(tmp_path / "v2", {"a.txt": b"uno", MANIFEST_NAME: b"stale local manifest"})
    result = upload_tree(v2, store.uri("out"))
    assert [f.path for f in result.files] == ["a.txt"]  # the local manifest is not uploaded as data
    manifest = json.loads(read_text(store.uri(f"out/{MANIFEST_NAME}")))
    assert [e["path"] for e in manifest["files"]] == ["a.txt"]


def test_upload_tree_of_an_empty_or_missing_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="the folder has no files"):
        upload_tree(tmp_path / "empty", f"file://{tmp_path}/out")
    with pytest.raises(StorageError, match="no such local folder"):
        upload_tree(tmp_path / "missing", f"file://{tmp_path}/out")


# gcsfs hands aiohttp raw bytes for every upload request over 1 MiB; aiohttp
# warns about it (a ResourceWarning, hidden by Python's default filters).
@pytest.mark.filterwarnings("ignore:Sending a large body directly with raw bytes:ResourceWarning")
def test_a_file_past_the_simple_upload_limit_round_trips(store: Store, tmp_path: Path) -> None:
    big = os.urandom(6 * 2**20)  # gcsfs switches to a resumable upload at 5 MiB
    local = _make_local_tree(tmp_path / "local", {"model.safetensors": big})
    upload_tree(local, store.uri("big"))
    result = fetch(store.uri("big"), tmp_path / "dest")
    assert (tmp_path / "dest" / "model.safetensors").read_bytes() == big
    assert {f.rel: f.check for f in result.files}["model.safetensors"] == "sha256"
