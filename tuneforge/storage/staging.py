"""The hidden staging folder inside DEST that every fetch downloads into before anything is visible.

Files are moved to their final names only once every one of them was
downloaded and checked, so a failed or killed fetch leaves no file (and
never a half-written one) in DEST; a later fetch removes what a killed one
left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tuneforge.storage.download import STAGING_PREFIX
from tuneforge.storage.errors import StorageError


@contextmanager
def staging(dest: Path) -> Iterator[Path]:
    """Creates DEST if needed and yields a fresh staging folder inside it, removed at the end."""
    if dest.exists() and not dest.is_dir():
        raise StorageError("InvalidUri", f"cannot fetch into {dest}: it is a file, not a folder")
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_into_place(moves: Iterable[tuple[Path, Path]]) -> None:
    """Renames each staged file to its final path (same filesystem: each rename is atomic)."""
    for staged, final in moves:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)


def safe_rel(rel: str, where: str) -> str:
    """``rel`` if it stays inside DEST; a source naming '..' or empty segments is refused."""
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(
            "Corrupt",
            f"cannot fetch {where}: it holds a file named {rel!r}, which would land outside the destination",
        )
    return rel
