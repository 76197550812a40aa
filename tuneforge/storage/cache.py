"""The shared model cache: one complete copy per (source, version) in a folder many jobs share.

The folder is meant to be a ReadWriteMany volume mounted into every
fetch-model container, so a base model is downloaded once per cluster, not
once per job. Layout under the cache folder::

    <key>/complete.json   what the entry holds (written last, before the entry is published)
    <key>/files/...       the files, read-only
    <key>.lock            flock()ed: shared to read an entry, exclusive to fill one
    .partial-<key>-*/     an entry being filled (or left by a killed fetch; removed by the next filler)

``key`` is derived from the source URI and its *version*: for hf:// the
commit sha the revision names now (a moving branch gets a new entry), for
file://, s3:// and gs:// a fingerprint of the listing (paths, sizes,
checksums, store versions). An entry appears under its final name only by
an atomic rename of a finished, checked, marked folder, so a reader never
sees a half-filled one; concurrent fetches of the same source wait on the
lock and the first one fills the entry for all. DEST then gets hard links
to the entry's files when both are on one filesystem, else copies.
Nothing is ever evicted: delete ``<key>/`` while holding ``<key>.lock``
exclusively (or while no job runs).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tuneforge.storage.download import Check, FetchedFile, FetchResult, fetch, fingerprint
from tuneforge.storage.errors import StorageError
from tuneforge.storage.staging import move_into_place, staging
from tuneforge.storage.uri import parse_uri

MARKER: Final = "complete.json"
FILES: Final = "files"
PARTIAL_PREFIX: Final = ".partial-"
_LINK_FALLBACK: Final = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES)


class CachedFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    size: int
    sha256: str
    check: Check


class CacheMarker(BaseModel):
    """``complete.json``: the entry's source, version and files, as checked when it was filled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    source: str
    identity: str
    manifest: bool
    files: list[CachedFile]


@dataclass(frozen=True)
class CachedFetch:
    result: FetchResult
    cached: bool
    """False when the source has no stable identity (https://) and was fetched without the cache."""
    hit: bool
    """True when the entry was there already (nothing was downloaded)."""
    linked: bool
    """True when DEST got hard links to the entry's files, False for copies."""
    entry: Path | None


def source_identity(src: str, revision: str | None = None) -> str | None:
    """What names this source's current content; None when nothing does (https://)."""
    uri = parse_uri(src)
    if uri.scheme == "hf":
        from tuneforge.storage.hub_fetch import resolve_commit

        return f"hf-commit:{resolve_commit(uri, revision)}"
    if revision is not None:
        raise StorageError(
            "InvalidUri", f"cannot fetch {uri}: a revision ({revision!r}) applies to hf:// sources only"
        )
    if uri.scheme == "https":
        return None
    return f"listing:{fingerprint(src)}"


def cache_key(source: str, identity: str) -> str:
    return hashlib.sha256(f"{source}\n{identity}".encode()).hexdigest()[:40]


def fetch_cached(
    src: str,
    dest: Path,
    *,
    cache_dir: Path,
    revision: str | None = None,
    on_file: Callable[[FetchedFile], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> CachedFetch:
    """Fetches ``src`` into ``dest`` through the cache in ``cache_dir``, filling the entry if it is missing.

    ``on_file`` sees each file as it is downloaded (miss) or placed (hit);
    ``log`` gets one line when the fetch waits for another one.
    """
    started = time.monotonic()
    identity = source_identity(src, revision)
    if identity is None:
        return CachedFetch(fetch(src, dest, revision=revision, on_file=on_file), False, False, False, None)
    source = str(parse_uri(src))
    # hf:// is fetched at the resolved commit, so the entry holds exactly what its key names.
    at = identity.removeprefix("hf-commit:") if identity.startswith("hf-commit:") else None
    key = cache_key(source, identity)
    root = _cache_root(cache_dir)
    entry = root / key
    with _lock(root / f"{key}.lock", log) as lock:
        lock(fcntl.LOCK_SH)
        marker = complete_marker(entry)
        hit = marker is not None
        if marker is None:
            lock(fcntl.LOCK_EX)
            marker = complete_marker(entry)  # filled while we waited?
            hit = marker is not None
            if marker is None:
                marker = _fill(root, key, source, identity, src, at, on_file)
            lock(fcntl.LOCK_SH)
        files, linked = _materialize(entry, marker, Path(dest), on_file if hit else None)
    result = FetchResult(source, Path(dest), files, time.monotonic() - started, marker.manifest)
    return CachedFetch(result, True, hit, linked, entry)


def complete_marker(entry: Path) -> CacheMarker | None:
    """The entry's marker when the entry is complete and intact (every file there, at its size)."""
    try:
        marker = CacheMarker.model_validate_json((entry / MARKER).read_bytes())
    except (OSError, ValidationError):
        return None
    for item in marker.files:
        try:
            if (entry / FILES / item.path).stat().st_size != item.size:
                return None
        except OSError:
            return None
    return marker


def _cache_root(cache_dir: Path) -> Path:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        probe = cache_dir / f".probe-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise StorageError(
            "AccessDenied",
            f"the model cache folder {cache_dir} is not usable ({exc.strerror}); the process runs as uid "
            f"{os.getuid()}: check the cache volume's claim, mount and permissions (fsGroup)",
        ) from None
    return cache_dir


@contextmanager
def _lock(path: Path, log: Callable[[str], None] | None) -> Iterator[Callable[[int], None]]:
    """Yields ``take(mode)``: flock()s ``path`` shared or exclusive, saying when it must wait."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)

    def take(mode: int) -> None:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if log is not None:
                log(f"waiting for another fetch of the same source to finish (lock {path})")
            fcntl.flock(fd, mode)

    try:
        yield take
    finally:
        os.close(fd)  # releases the lock (the kernel does so too when a process dies)


def _fill(
    root: Path,
    key: str,
    source: str,
    identity: str,
    src: str,
    revision: str | None,
    on_file: Callable[[FetchedFile], None] | None,
) -> CacheMarker:
    """Fetches into a partial folder, marks it complete, and publishes it by renaming it to ``<key>``."""
    for stale in root.glob(f"{PARTIAL_PREFIX}{key}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed fetch: we hold the lock, nobody fills it
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{key}-", dir=root))
    try:
        result = fetch(src, partial / FILES, revision=revision, on_file=on_file)
        for item in result.files:
            item.path.chmod(0o444)  # DEST may hard-link them: no one may write through a link
        marker = CacheMarker(
            source=source,
            identity=identity,
            manifest=result.manifest,
            files=[CachedFile(path=f.rel, size=f.size, sha256=f.sha256, check=f.check) for f in result.files],
        )
        (partial / MARKER).write_text(marker.model_dump_json(indent=1) + "\n")
        entry = root / key
        if entry.exists():  # incomplete or damaged: move it out of the way first
            os.rename(entry, root / f"{PARTIAL_PREFIX}{key}-broken-{uuid.uuid4().hex[:8]}")
        os.rename(partial, entry)
        return marker
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        for broken in root.glob(f"{PARTIAL_PREFIX}{key}-broken-*"):
            shutil.rmtree(broken, ignore_errors=True)


def _materialize(
    entry: Path, marker: CacheMarker, dest: Path, on_file: Callable[[FetchedFile], None] | None
) -> tuple[tuple[FetchedFile, ...], bool]:
    """Puts the entry's files into ``dest`` (hard links if possible, else copies); returns them and which."""
    linked = True
    files = []
    with staging(dest) as stage:
        moves = []
        for item in marker.files:
            source, staged = entry / FILES / item.path, stage / item.path
            staged.parent.mkdir(parents=True, exist_ok=True)
            linked = _link_or_copy(source, staged, linked)
            fetched = FetchedFile(item.path, dest / item.path, item.size, item.sha256, item.check)
            moves.append((staged, fetched.path))
            files.append(fetched)
            if on_file is not None:
                on_file(fetched)
        move_into_place(moves)
    return tuple(files), linked


def _link_or_copy(source: Path, target: Path, try_link: bool) -> bool:
    """Hard-links ``source`` to ``target`` when ``try_link`` and the filesystem allows; else copies."""
    if try_link:
        try:
            os.link(source, target)
            return True
        except OSError as exc:
            if exc.errno not in _LINK_FALLBACK:
                raise
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        hint = "; give the workspace volume more room" if exc.errno == errno.ENOSPC else ""
        raise StorageError(
            "TransferFailed", f"cannot copy {source} from the model cache: {exc}{hint}"
        ) from exc
    return False
