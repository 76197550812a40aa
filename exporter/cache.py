"""The merged-model cache: a merged model built once is kept for later exports of the same merge.

A GGUF export merges the adapter first; that merged model is published
beside the adapter's run output — ``<adapter's parent>/exports/merged/`` —
with its record, as the old export job kept ``merged_models/{job_id}/``. A
later merged or GGUF export of the same adapter and base (same merge digest)
fetches it instead of fetching the base model and merging again.

The cache is a convenience: failing to read or write it is logged, never
fatal (the export pod may read the adapter's bucket without writing it).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from tuneforge.exporter import destinations
from tuneforge.exporter.artifacts import ArtifactKind, ArtifactRecord
from tuneforge.exporter.identity import Identity
from tuneforge.storage import StorageError, fetch, parse_uri

log = logging.getLogger(__name__)

MERGED: Final = ArtifactKind("merged", None, "none")
CACHE_FOLDER: Final = "exports"


def cache_uri(adapter_uri: str) -> str | None:
    """Where merges of this adapter are kept (None for sources that cannot hold them)."""
    uri = parse_uri(adapter_uri)
    if uri.scheme not in ("file", "s3", "gs") or not uri.path.strip("/"):
        return None
    return destinations.artifact_uri(str(uri.parent.join(CACHE_FOLDER)), MERGED)


def merge_identity(adapter: str, base: str) -> Identity:
    return Identity(
        adapter=adapter, base=base, format="merged", quantization=None, archive="none", llama_cpp=None
    )


def fetch_cached(cache: str | None, digest: str, dest: Path) -> Path | None:
    """Fills ``dest`` with the cached merge of ``digest``; None when the cache does not hold it."""
    if cache is None:
        return None
    try:
        if destinations.holding(cache, MERGED, digest) is None:
            return None
        fetch(cache, dest)
    except StorageError as err:
        log.warning("the merged-model cache at %s could not be read (%s); merging instead", cache, err)
        return None
    log.info("fetched the merged model from the cache at %s", cache)
    return dest


def store(cache: str | None, merged: Path, identity: Identity) -> bool:
    """Publishes ``merged`` to the cache (replacing what it held); False when that failed."""
    if cache is None:
        return False
    try:
        published = destinations.publish(merged, cache, MERGED)
        destinations.write_record(
            cache,
            ArtifactRecord(
                digest=identity.digest,
                identity=identity.wire(),
                format="merged",
                bytes=published.bytes,
                sha256=published.sha256,
                created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ),
        )
    except StorageError as err:
        log.warning("could not keep the merged model in the cache at %s: %s", cache, err)
        return False
    log.info("kept the merged model at %s for later exports", cache)
    return True
