"""Single objects: upload_file, write_text, read_text, exists, is_complete on every store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tuneforge.storage import (
    MANIFEST_NAME,
    StorageError,
    exists,
    is_complete,
    read_text,
    upload_file,
    write_text,
)

if TYPE_CHECKING:
    from storage.conftest import Store


def test_write_then_read_text(store: Store) -> None:
    write_text(store.uri("runs/r1/run.json"), '{"loss": 1.5, "note": "ünïcode"}')
    assert read_text(store.uri("runs/r1/run.json")) == '{"loss": 1.5, "note": "ünïcode"}'
    write_text(store.uri("runs/r1/run.json"), "second")
    assert read_text(store.uri("runs/r1/run.json")) == "second"
    assert store.keys() == ["runs/r1/run.json"]  # no temporary names left behind


def test_upload_file_places_the_bytes_at_the_uri(store: Store, tmp_path: Path) -> None:
    local = tmp_path / "adapter.safetensors"
    local.write_bytes(bytes(range(256)) * 64)
    upload_file(local, store.uri("out/adapter/adapter.safetensors"))
    assert store.keys() == ["out/adapter/adapter.safetensors"]
    assert exists(store.uri("out/adapter/adapter.safetensors"))


def test_exists_and_is_complete(store: Store) -> None:
    assert not exists(store.uri("a/b.txt"))
    store.put("a/b.txt", b"b")
    assert exists(store.uri("a/b.txt"))
    assert exists(store.uri("a"))  # a folder with objects in it
    assert not is_complete(store.uri("a"))
    store.put(f"a/{MANIFEST_NAME}", b'{"version": 1, "files": []}')
    assert is_complete(store.uri("a"))
    assert is_complete(store.uri("a/"))


def test_reading_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(StorageError) as caught:
        read_text(store.uri("nothing.txt"))
    assert caught.value.reason == "NotFound"
    assert store.uri("nothing.txt") in str(caught.value)


def test_reading_binary_as_text_is_corrupt(store: Store) -> None:
    store.put("blob.bin", b"\xff\xfe\x00binary")
    with pytest.raises(StorageError, match=r"not UTF-8 text .* at byte 0") as caught:
        read_text(store.uri("blob.bin"))
    assert caught.value.reason == "Corrupt"


@pytest.mark.parametrize("dest", ["s3://bucket", "gs://bucket/folder/", "file:///tmp/dir/"])
def test_writing_to_a_folder_uri_is_refused(dest: str) -> None:
    with pytest.raises(StorageError, match="names a folder or bucket") as caught:
        write_text(dest, "x")
    assert caught.value.reason == "InvalidUri"


def test_uploading_a_missing_local_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such local file") as caught:
        upload_file(tmp_path / "missing.bin", f"file://{tmp_path}/out/x.bin")
    assert caught.value.reason == "NotFound"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
