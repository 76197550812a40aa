"""fetch(): copy one object or a whole folder from a URI to a local folder, verified.

Files are downloaded into a hidden staging folder inside DEST and moved to
their final names only when every file has passed its checks, so a failed
fetch leaves no file at all (and never a half-written one) in DEST.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from fsspec import AbstractFileSystem

from tuneforge.storage.backends import endpoint_for, filesystem
from tuneforge.storage.errors import StorageError
from tuneforge.storage.manifest import MANIFEST_NAME, Manifest, hash_file, parse_manifest
from tuneforge.storage.translate import translating
from tuneforge.storage.uri import StorageUri, parse_uri

STAGING_PREFIX: Final = ".tuneforge-fetch-"

Check = Literal["sha256", "sha1", "md5", "size", "none"]


@dataclass(frozen=True)
class FetchedFile:
    rel: str
    """Path relative to DEST, "/"-separated."""
    path: Path
    size: int
    sha256: str
    check: Check
    """The strongest check it passed: sha256 (manifest, Hub LFS, server digest), the Hub's git blob
    id (sha1), the store's md5, size only, or none (a web server that gave neither)."""


@dataclass(frozen=True)
class FetchResult:
    source: str
    dest: Path
    files: tuple[FetchedFile, ...]
    seconds: float
    manifest: bool
    """True when the source had a _MANIFEST.json and every file matched it."""

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Planned:
    uri: StorageUri
    remote: str
    rel: str
    size: int
    sha256: str | None
    md5: str | None
    version: str = ""
    """What the store says identifies this content (ETag, generation, mtime), for fingerprints."""


def fetch(
    src: str,
    dest: Path,
    *,
    revision: str | None = None,
    on_file: Callable[[FetchedFile], None] | None = None,
) -> FetchResult:
    """Copies ``src`` (one object -> ``dest/<name>``; a folder -> its tree under ``dest``).

    Every file's size is checked; its sha256 too when the source folder has a
    ``_MANIFEST.json``, and its md5 where the store reports one (GCS).
    hf:// sources are fetched at ``revision`` (default main) and checked
    against the Hub's listing; https:// files against the server's size and
    digest headers. ``on_file`` is called after each file is downloaded and checked.
    """
    uri = parse_uri(src)
    if uri.scheme == "hf":
        from tuneforge.storage.hub_fetch import fetch_hub

        return fetch_hub(uri, Path(dest), revision=revision, on_file=on_file)
    if revision is not None:
        raise StorageError(
            "InvalidUri", f"cannot fetch {uri}: a revision ({revision!r}) applies to hf:// sources only"
        )
    if uri.scheme == "https":
        from tuneforge.storage.https import fetch_https

        return fetch_https(uri, Path(dest), on_file=on_file)
    started = time.monotonic()
    with translating(uri, "fetch"):
        fs = filesystem(uri)
        plan, manifest = _plan(fs, uri)
    files = _download(fs, plan, Path(dest), on_file)
    return FetchResult(str(uri), Path(dest), tuple(files), time.monotonic() - started, manifest is not None)


def _plan(fs: AbstractFileSystem, uri: StorageUri) -> tuple[list[_Planned], Manifest | None]:
    if uri.path.endswith("/") or not uri.path:
        return _plan_folder(fs, uri)
    try:
        info = fs.info(uri.fs_path)
    except FileNotFoundError:
        raise _not_found(fs, uri) from None
    if info.get("type") != "file":
        return _plan_folder(fs, uri)
    manifest = None if uri.name == MANIFEST_NAME else _read_manifest(fs, uri.parent, must_exist=False)
    item = _planned(uri, info["name"], uri.name, info)
    if manifest is not None and uri.name not in manifest.by_path():
        manifest = None  # the folder's manifest does not cover this file
    return _apply_manifest([item], manifest, uri.parent, whole_folder=False), manifest


def _plan_folder(fs: AbstractFileSystem, uri: StorageUri) -> tuple[list[_Planned], Manifest | None]:
    root = uri.fs_path
    try:
        listing: Mapping[str, Any] = fs.find(root, detail=True)
    except FileNotFoundError:
        listing = {}
    items = []
    for path, info in sorted(listing.items()):
        if info.get("type") != "file" or path.endswith("/"):
            continue  # "folder" marker objects
        rel = path[len(root) :].lstrip("/")
        items.append(_planned(uri.join(rel), path, _safe_rel(uri, rel), info))
    if not items:
        raise _not_found(fs, uri, folder=True)
    has_manifest = any(item.rel == MANIFEST_NAME for item in items)
    manifest = _read_manifest(fs, uri, must_exist=True) if has_manifest else None
    return _apply_manifest(items, manifest, uri, whole_folder=True), manifest


def _planned(uri: StorageUri, remote: str, rel: str, info: Mapping[str, Any]) -> _Planned:
    version = info.get("ETag") or info.get("generation") or info.get("mtime") or ""
    return _Planned(uri, remote, rel, int(info.get("size") or 0), None, _store_md5(info), str(version))


def fingerprint(src: str) -> str:
    """A digest of what ``fetch(src)`` would copy now: each file's path, size, checksum and store version.

    Cheap (one listing, and the manifest if there is one): the shared model
    cache keys a file://, s3:// or gs:// source by it, so changed content is
    fetched again rather than served stale.
    """
    uri = parse_uri(src)
    with translating(uri, "fetch"):
        fs = filesystem(uri)
        plan, _ = _plan(fs, uri)
    digest = hashlib.sha256()
    for item in plan:
        digest.update(f"{item.rel}\t{item.size}\t{item.sha256 or item.md5 or ''}\t{item.version}\n".encode())
    return digest.hexdigest()


def _store_md5(info: Mapping[str, Any]) -> str | None:
    # GCS gives md5Hash for every non-composite object. S3's ETag is the md5
    # only for single-part uploads without SSE-KMS, and nothing in a listing
    # says which, so it is not used: a false "Corrupt" would be worse.
    value = info.get("md5Hash")
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def _safe_rel(uri: StorageUri, rel: str) -> str:
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(
            "Corrupt",
            f"cannot fetch {uri}: object {rel!r} has an empty, '.' or '..' path segment and would land "
            "outside the destination; rename it in the store",
        )
    return rel


def _read_manifest(fs: AbstractFileSystem, folder: StorageUri, *, must_exist: bool) -> Manifest | None:
    where = folder.join(MANIFEST_NAME)
    try:
        raw = fs.cat_file(where.fs_path)
    except FileNotFoundError:
        if must_exist:
            raise
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StorageError("Corrupt", f"{where} is not UTF-8 text; upload the folder again") from None
    return parse_manifest(text, str(where))


def _apply_manifest(
    items: list[_Planned], manifest: Manifest | None, folder: StorageUri, *, whole_folder: bool
) -> list[_Planned]:
    """Adds each file's expected sha256; fails early on files missing or of the wrong size."""
    if manifest is None:
        return items
    expected = manifest.by_path()
    if whole_folder:
        missing = sorted(set(expected) - {item.rel for item in items})
        if missing:
            raise _corrupt(
                folder,
                f"its {MANIFEST_NAME} lists {len(missing)} file(s) not in the store, e.g. {missing[0]!r}",
            )
    out = []
    for item in items:
        entry = expected.get(item.rel)
        if entry is None:
            out.append(item)
            continue
        if entry.size != item.size:
            raise _corrupt(item.uri, f"the store holds {item.size} bytes, {MANIFEST_NAME} says {entry.size}")
        out.append(dataclasses.replace(item, sha256=entry.sha256))
    return out


def _corrupt(uri: StorageUri, problem: str) -> StorageError:
    return StorageError(
        "Corrupt", f"cannot fetch {uri}: {problem}; the data changed after it was uploaded — upload it again"
    )


def _not_found(fs: AbstractFileSystem, uri: StorageUri, *, folder: bool = False) -> StorageError:
    where = endpoint_for(uri.scheme).describe()
    if uri.scheme != "file":
        try:
            bucket_exists = fs.exists(uri.bucket)
        except Exception:
            bucket_exists = True  # cannot tell; say the general thing
        if not bucket_exists:
            spec = "spec.storage.s3" if uri.scheme == "s3" else "spec.storage.gcs"
            return StorageError(
                "NotFound",
                f"cannot fetch {uri}: bucket {uri.bucket!r} does not exist on {where}; "
                f"check the bucket name and {spec}.endpoint",
            )
    what = "no files under this folder" if folder else "no object or folder at this URI"
    return StorageError("NotFound", f"cannot fetch {uri}: {what} on {where}; check the path")


def _download(
    fs: AbstractFileSystem, plan: list[_Planned], dest: Path, on_file: Callable[[FetchedFile], None] | None
) -> list[FetchedFile]:
    if dest.exists() and not dest.is_dir():
        raise StorageError("InvalidUri", f"cannot fetch into {dest}: it is a file, not a folder")
    dest.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(dest)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
    try:
        staged: list[tuple[Path, FetchedFile]] = []
        for item in plan:
            tmp = staging / item.rel
            tmp.parent.mkdir(parents=True, exist_ok=True)
            with translating(item.uri, "download"):
                fs.get_file(item.remote, str(tmp))
            fetched = _verify(item, tmp, dest / item.rel)
            staged.append((tmp, fetched))
            if on_file is not None:
                on_file(fetched)
        for tmp, fetched in staged:
            fetched.path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, fetched.path)
        return [fetched for _, fetched in staged]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_stale_staging(dest: Path) -> None:
    # Left by a fetch that was killed; a dataset loader globbing DEST must not see them.
    for stale in dest.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def _verify(item: _Planned, local: Path, final: Path) -> FetchedFile:
    digest = hash_file(local, md5=item.md5 is not None)
    if digest.size != item.size:
        raise _corrupt(item.uri, f"downloaded {digest.size} bytes, the store listed {item.size}")
    if item.sha256 is not None and digest.sha256 != item.sha256:
        raise _corrupt(
            item.uri, f"sha256 {digest.sha256[:12]}… does not match {MANIFEST_NAME} ({item.sha256[:12]}…)"
        )
    if item.md5 is not None and digest.md5 != item.md5:
        raise _corrupt(item.uri, f"md5 {digest.md5} does not match the store's checksum {item.md5}")
    check: Check = "sha256" if item.sha256 else "md5" if item.md5 else "size"
    return FetchedFile(item.rel, final, digest.size, digest.sha256, check)
