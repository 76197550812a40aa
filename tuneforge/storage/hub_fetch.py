"""Fetching ``hf://`` sources: a model or dataset repository (or a file or folder in it) at a revision.

The revision (branch, tag or commit; default main) is resolved to its commit
sha first and everything is downloaded at that sha, so a branch that moves
mid-fetch cannot mix two versions. ``huggingface_hub.snapshot_download``
does the transfer into the staging folder; every file is then checked
against the Hub's own listing — size, plus sha256 for LFS files and the git
blob id for the others — before it is moved into DEST.
"""

from __future__ import annotations

import glob
import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from tuneforge.storage.download import FetchedFile, FetchResult
from tuneforge.storage.errors import StorageError
from tuneforge.storage.hub import LIBRARY_NAME, HubContext, HubRepo, HubSettings, hub_errors, hub_settings
from tuneforge.storage.manifest import hash_file
from tuneforge.storage.staging import move_into_place, safe_rel, staging
from tuneforge.storage.uri import StorageUri

COMMIT_SHA: Final = re.compile(r"^[0-9a-f]{40}$")
_CHUNK: Final = 1 << 20
_WORKERS: Final = 4


def _context(repo: HubRepo, settings: HubSettings, revision: str | None) -> HubContext:
    return HubContext(
        repo=repo,
        action="fetch",
        settings=settings,
        token_field=f"{repo.spec_prefix}.tokenSecretRef",
        revision=revision,
    )


def _api(settings: HubSettings) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=settings.endpoint, token=settings.token, library_name=LIBRARY_NAME)


def resolve_commit(uri: StorageUri, revision: str | None = None) -> str:
    """The commit sha that ``revision`` (default: main) of the hf:// source ``uri`` names now."""
    repo = HubRepo.from_uri(uri)
    settings = hub_settings()
    with hub_errors(_context(repo, settings, revision)):
        return _resolve(_api(settings), repo, revision)


def _resolve(api: Any, repo: HubRepo, revision: str | None) -> str:
    # Asked even for a commit sha: it checks that the repo exists and the token may read it.
    info = api.repo_info(repo.repo_id, repo_type=repo.repo_type, revision=revision or "main")
    sha = getattr(info, "sha", None)
    if not isinstance(sha, str) or not COMMIT_SHA.match(sha):
        raise StorageError(
            "TransferFailed", f"cannot fetch {repo}: the Hub gave no commit sha for the revision"
        )
    return sha


def fetch_hub(
    uri: StorageUri,
    dest: Path,
    *,
    revision: str | None = None,
    on_file: Callable[[FetchedFile], None] | None = None,
) -> FetchResult:
    """Copies the repository (or the file or folder ``uri`` names in it) at ``revision`` into ``dest``.

    A file lands at ``dest/<name>``; a folder's (or the whole repository's)
    tree lands under ``dest`` with its layout kept.
    """
    started = time.monotonic()
    repo = HubRepo.from_uri(uri)
    settings = hub_settings()
    ctx = _context(repo, settings, revision)
    with hub_errors(ctx):
        api = _api(settings)
        commit = _resolve(api, repo, revision)
        planned = _plan(api, repo, commit, revision)
    with staging(Path(dest)) as stage:
        with hub_errors(ctx):
            _download(repo, commit, settings, _patterns(repo, planned), stage)
        moves = []
        files = []
        for path, rel, entry in planned:
            fetched = _verify(repo, path, rel, entry, stage / path, Path(dest))
            moves.append((stage / path, fetched.path))
            files.append(fetched)
            if on_file is not None:
                on_file(fetched)
        move_into_place(moves)
    return FetchResult(str(uri), Path(dest), tuple(files), time.monotonic() - started, manifest=False)


def _plan(api: Any, repo: HubRepo, commit: str, revision: str | None) -> list[tuple[str, str, Any]]:
    """``(path in repo, path under DEST, RepoFile)`` for every file to fetch."""
    from huggingface_hub.hf_api import RepoFile

    kind = repo.repo_type
    if repo.path:
        infos = api.get_paths_info(repo.repo_id, [repo.path], revision=commit, repo_type=kind)
        if not infos:
            raise StorageError(
                "NotFound",
                f"cannot fetch {repo}: {repo.path!r} does not exist in {repo.repo_id} at revision "
                f"{revision or 'main'} ({commit[:12]}); check {repo.spec_prefix}.source",
            )
        if isinstance(infos[0], RepoFile):
            return [(repo.path, safe_rel(repo.path.rpartition("/")[2], str(repo)), infos[0])]
    listing = api.list_repo_tree(
        repo.repo_id, path_in_repo=repo.path or None, recursive=True, revision=commit, repo_type=kind
    )
    prefix = f"{repo.path}/" if repo.path else ""
    planned = [
        (f.path, safe_rel(f.path[len(prefix) :], str(repo)), f)
        for f in listing
        if isinstance(f, RepoFile) and f.path.startswith(prefix)
    ]
    if not planned:
        raise StorageError(
            "NotFound", f"cannot fetch {repo}: no files there at revision {revision or 'main'}"
        )
    return sorted(planned, key=lambda item: item[0])


def _patterns(repo: HubRepo, planned: list[tuple[str, str, Any]]) -> list[str] | None:
    """What snapshot_download should fetch: everything, one file, or one folder's tree."""
    if not repo.path:
        return None
    if len(planned) == 1 and planned[0][0] == repo.path:
        return [glob.escape(repo.path)]
    return [glob.escape(repo.path) + "/*"]  # fnmatch's "*" also matches "/"


def _download(
    repo: HubRepo, commit: str, settings: HubSettings, patterns: list[str] | None, stage: Path
) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(
        repo.repo_id,
        repo_type=repo.repo_type,
        revision=commit,
        local_dir=stage,
        allow_patterns=patterns,
        token=settings.token,
        endpoint=settings.endpoint,
        library_name=LIBRARY_NAME,
        max_workers=_WORKERS,
    )


def _verify(repo: HubRepo, path: str, rel: str, entry: Any, local: Path, dest: Path) -> FetchedFile:
    def corrupt(problem: str) -> StorageError:
        return StorageError(
            "Corrupt", f"cannot fetch {repo}: {path}: {problem}; the download was damaged, fetch again"
        )

    if not local.is_file():
        raise corrupt("the Hub client did not deliver it")
    if entry.lfs is not None:
        digest = hash_file(local)
        if digest.size != entry.size:
            raise corrupt(f"got {digest.size} bytes, the Hub lists {entry.size}")
        if digest.sha256 != entry.lfs.sha256:
            raise corrupt(f"sha256 {digest.sha256[:12]}… does not match the Hub's {entry.lfs.sha256[:12]}…")
        return FetchedFile(rel, dest / rel, digest.size, digest.sha256, "sha256")
    size, sha256, git_id = _hash_git(local)
    if size != entry.size:
        raise corrupt(f"got {size} bytes, the Hub lists {entry.size}")
    if getattr(entry, "xet_hash", None):
        # Stored in Xet with no LFS sha256 listed: its git id is that of a pointer, not of the bytes.
        return FetchedFile(rel, dest / rel, size, sha256, "size")
    if git_id != entry.blob_id:
        raise corrupt(f"git blob id {git_id[:12]}… does not match the Hub's {str(entry.blob_id)[:12]}…")
    return FetchedFile(rel, dest / rel, size, sha256, "sha1")


def _hash_git(path: Path) -> tuple[int, str, str]:
    """Size, sha256 and git blob id (sha1 of ``"blob <size>\\0" + content``) in one read."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    return size, sha256.hexdigest(), sha1.hexdigest()
