"""``archive: zip``: one zip file of a folder (the old export job's "file" variant).

The zip is reproducible — entries sorted, fixed timestamps and permissions —
so the same folder always gives the same bytes and the same sha256. Weights
are stored as they are (they barely compress and deflating gigabytes takes
minutes); text files are deflated. Files sit at the root of the zip.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Final

STORED_SUFFIXES: Final = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".model")
_EPOCH: Final = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_CHUNK: Final = 1 << 20


def zip_folder(folder: Path, out: Path) -> Path:
    """Writes every file under ``folder`` (not hidden ones, not the manifest) into the zip ``out``."""
    folder, out = Path(folder), Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
        for path in files:
            rel = path.relative_to(folder).as_posix()
            if rel == "_MANIFEST.json":
                continue
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            stored = path.suffix in STORED_SUFFIXES
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.file_size = path.stat().st_size  # lets zipfile choose zip64 for files past 2 GiB
            with path.open("rb") as src, archive.open(info, "w") as dest:
                while chunk := src.read(_CHUNK):
                    dest.write(chunk)
    os.replace(tmp, out)
    return out
