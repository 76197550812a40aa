"""Reading the export's inputs: the adapter, the base model, and what the card and the identity need.

Thin wrappers over ``tuneforge.storage``; the only I/O the identity needs
before deciding whether to build at all is small: the adapter's
``_MANIFEST.json`` and the base model's version (an hf:// commit or a
store listing).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from tuneforge.exporter.identity import files_digest, local_files_digest
from tuneforge.storage import MANIFEST_NAME, StorageError, fetch, parse_uri, read_text
from tuneforge.storage.manifest import parse_manifest

log = logging.getLogger(__name__)

RUN_RECORD_FOLDER = "run"


def adapter_digest_from_manifest(adapter_uri: str) -> str | None:
    """The adapter's content digest from its ``_MANIFEST.json`` (no download); None when it has none."""
    where = str(parse_uri(adapter_uri).join(MANIFEST_NAME))
    try:
        text = read_text(where)
    except StorageError as err:
        if err.reason == "NotFound":
            return None
        raise
    manifest = parse_manifest(text, where)
    return files_digest((entry.path, entry.sha256) for entry in manifest.files)


def adapter_digest_from_files(adapter_dir: Path) -> str:
    """The same digest computed from a fetched adapter folder."""
    return local_files_digest(adapter_dir, exclude=(MANIFEST_NAME,))


def base_version(base_uri: str, revision: str | None) -> str:
    """What names the base model's current content: the hf:// commit, or the store's listing."""
    from tuneforge.storage.cache import source_identity

    identity = source_identity(base_uri, revision)
    return f"{base_uri}@{identity}" if identity else f"{base_uri}@unversioned"


def fetch_folder(uri: str, dest: Path, *, revision: str | None = None) -> Path:
    """Fetches ``uri`` into ``dest`` (verified; see tuneforge.storage.fetch) and returns ``dest``."""
    if revision is not None:
        fetch(uri, dest, revision=revision)
    else:
        fetch(uri, dest)
    return dest


def read_json(uri: str) -> dict[str, Any] | None:
    """A small JSON object at ``uri``; None when it is missing or not a JSON object."""
    text = read_optional_text(uri)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("%s is not JSON; ignored", uri)
        return None
    return value if isinstance(value, dict) else None


def read_optional_text(uri: str, *, revision: str | None = None) -> str | None:
    """A small text file at ``uri`` (any scheme fetch reads, hf:// included); None when it is not there."""
    try:
        if parse_uri(uri).scheme in ("file", "s3", "gs") and revision is None:
            return read_text(uri)
        with tempfile.TemporaryDirectory(prefix="tuneforge-read-") as tmp:
            result = fetch(uri, Path(tmp), revision=revision) if revision else fetch(uri, Path(tmp))
            return result.files[0].path.read_text(encoding="utf-8") if result.files else None
    except StorageError as err:
        if err.reason in ("NotFound", "InvalidUri"):
            return None
        log.warning("could not read %s: %s", uri, err)
        return None
    except (OSError, UnicodeDecodeError) as err:
        log.warning("could not read %s: %s", uri, err)
        return None


def run_record_of(adapter_uri: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The FineTuneJob's run record beside a Tuneforge adapter (``<output>/adapter`` -> ``<output>/run``).

    Returns (config.json, status.json), each None when absent — an adapter
    from elsewhere has neither.
    """
    uri = parse_uri(adapter_uri)
    if uri.name != "adapter" or uri.scheme not in ("file", "s3", "gs"):
        return None, None
    run = uri.parent.join(RUN_RECORD_FOLDER)
    return read_json(str(run.join("config.json"))), read_json(str(run.join("status.json")))
