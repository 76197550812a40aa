"""Single-object operations: upload a file, write/read text, existence checks.

No writer leaves a half-written object at its final name: an object store
makes a PUT (and a completed multipart or resumable upload) visible at
once, and local files are written to a hidden temporary name in the same
folder and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fsspec import AbstractFileSystem

from tuneforge.storage.backends import filesystem
from tuneforge.storage.errors import StorageError
from tuneforge.storage.manifest import MANIFEST_NAME
from tuneforge.storage.translate import translating
from tuneforge.storage.uri import StorageUri, parse_uri


def upload_file(local: Path, dest: str) -> None:
    """Copies the local file ``local`` to the object URI ``dest``."""
    uri = _object_uri(dest, "upload to")
    source = Path(local)
    if not source.is_file():
        raise StorageError("NotFound", f"cannot upload {source} to {uri}: no such local file")
    with translating(uri, "upload to"):
        put_file(filesystem(uri), source, uri)


def write_text(dest: str, text: str) -> None:
    """Writes ``text`` (UTF-8) to the object URI ``dest`` in one atomic step."""
    uri = _object_uri(dest, "write")
    data = text.encode("utf-8")
    with translating(uri, "write"):
        fs = filesystem(uri)
        if uri.scheme == "file":
            _replace_local(uri.local_path, lambda out: out.write(data))
        else:
            fs.pipe_file(uri.fs_path, data)


def read_text(src: str) -> str:
    """Reads the whole object ``src`` as UTF-8 text."""
    uri = _object_uri(src, "read")
    with translating(uri, "read"):
        raw = filesystem(uri).cat_file(uri.fs_path)
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StorageError(
            "Corrupt", f"cannot read {uri}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def exists(uri: str) -> bool:
    """Whether an object, a folder with objects in it, or a bucket is at ``uri``."""
    parsed = parse_uri(uri)
    with translating(parsed, "check"):
        return bool(filesystem(parsed).exists(parsed.fs_path))


def is_complete(prefix: str) -> bool:
    """Whether the folder at ``prefix`` was completely uploaded: its _MANIFEST.json is there.

    Readers of a folder written by :func:`upload_tree` check this first: the
    manifest is written last, so without it the folder may be half-written.
    """
    return exists(str(parse_uri(prefix).join(MANIFEST_NAME)))


def put_file(fs: AbstractFileSystem, local: Path, uri: StorageUri) -> None:
    """Uploads one local file to ``uri`` on ``fs``, atomically at its final name."""
    if uri.scheme == "file":
        _replace_local(uri.local_path, lambda out: _copy_from(local, out))
    else:
        fs.put_file(str(local), uri.fs_path)


def remove(fs: AbstractFileSystem, uri: StorageUri) -> None:
    """Deletes the object at ``uri`` if it is there."""
    if fs.exists(uri.fs_path):
        fs.rm_file(uri.fs_path)


def _object_uri(text: str, action: str) -> StorageUri:
    uri = parse_uri(text)
    if not uri.path.rstrip("/") or uri.path.endswith("/"):
        raise StorageError(
            "InvalidUri", f"cannot {action} {uri}: it names a folder or bucket; give an object's URI"
        )
    return uri


def _copy_from(local: Path, out: BinaryIO) -> None:
    with local.open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)


def _replace_local(final: Path, write: Callable[[BinaryIO], object]) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with tmp.open("wb") as out:
            write(out)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
