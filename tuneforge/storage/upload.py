"""upload_tree(): copy a local folder to a URI prefix and commit it with a manifest.

Order of writes: an old ``_MANIFEST.json`` at the destination is removed
first (the folder stops counting as complete), then every file, then the
new manifest. Readers check :func:`tuneforge.storage.is_complete` (or let
``fetch`` verify against the manifest) and never see a half-written folder
as complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tuneforge.storage.backends import filesystem
from tuneforge.storage.errors import StorageError
from tuneforge.storage.manifest import MANIFEST_NAME, Manifest, ManifestEntry, hash_file
from tuneforge.storage.objects import put_file, remove, write_text
from tuneforge.storage.translate import translating
from tuneforge.storage.uri import parse_uri


@dataclass(frozen=True)
class UploadResult:
    dest: str
    """The destination prefix."""
    manifest_uri: str
    files: tuple[ManifestEntry, ...]
    """What the manifest lists: path (relative), size and sha256 of each file."""
    seconds: float

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


def local_files(root: Path) -> list[tuple[str, Path]]:
    """``(relative "/" path, file)`` for every file under ``root``, sorted, without a root manifest."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    pairs = [(p.relative_to(root).as_posix(), p) for p in files]
    return [(rel, p) for rel, p in pairs if rel != MANIFEST_NAME]


def upload_tree(local: Path, dest: str) -> UploadResult:
    """Uploads every file under ``local`` to ``dest/<relative path>``, then ``dest/_MANIFEST.json``."""
    started = time.monotonic()
    root = Path(local)
    uri = parse_uri(dest)
    if not root.is_dir():
        raise StorageError("NotFound", f"cannot upload {root} to {uri}: no such local folder")
    files = local_files(root)
    if not files:
        raise StorageError("NotFound", f"cannot upload {root} to {uri}: the folder has no files")
    manifest_uri = uri.join(MANIFEST_NAME)
    entries: list[ManifestEntry] = []
    with translating(uri, "upload to"):
        fs = filesystem(uri)
        remove(fs, manifest_uri)
    for rel, path in files:
        digest = hash_file(path)
        target = uri.join(rel)
        with translating(target, "upload to"):
            put_file(fs, path, target)
        entries.append(ManifestEntry(path=rel, size=digest.size, sha256=digest.sha256))
    write_text(str(manifest_uri), Manifest(files=entries).to_json())  # the commit point
    return UploadResult(str(uri), str(manifest_uri), tuple(entries), time.monotonic() - started)
