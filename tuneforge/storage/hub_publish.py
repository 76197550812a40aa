"""Publishing to the Hugging Face Hub: a folder or one file, with its model card, as one commit.

A Hub commit is atomic: the repository shows all of the new files (and the
README) or none of them, so a failed publish never leaves a half-written
artifact. The repository is created when it does not exist (private or not,
as asked); an existing public repository is never written when the caller
asked for a private one. Unchanged files are skipped by the Hub client
(their ids match), so publishing the same artifact twice makes no new
commit.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from tuneforge.storage.errors import StorageError
from tuneforge.storage.hub import LIBRARY_NAME, HubContext, HubRepo, HubSettings, hub_errors, hub_settings
from tuneforge.storage.manifest import hash_file
from tuneforge.storage.upload import local_files
from tuneforge.storage.uri import parse_uri

DEFAULT_TOKEN_FIELD: Final = "the Hub destination's tokenSecretRef"
README: Final = "README.md"
BRANCH: Final = "main"


@dataclass(frozen=True)
class PublishedFile:
    path: str
    """Path in the repository."""
    size: int
    sha256: str
    url: str
    """Download URL of this file at the published commit."""


@dataclass(frozen=True)
class HubPublishResult:
    repo_id: str
    commit_sha: str
    """The commit that holds the files (the existing head when nothing changed)."""
    repo_url: str
    commit_url: str
    files: tuple[PublishedFile, ...]
    created: bool
    """True when this call created the repository."""

    @property
    def uri(self) -> str:
        return f"hf://{self.repo_id}"

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


def publish_to_hub(
    local: Path,
    repo_id: str,
    *,
    token: str,
    private: bool,
    readme: str | None,
    path_in_repo: str = "",
    commit_message: str,
    token_field: str = DEFAULT_TOKEN_FIELD,
) -> HubPublishResult:
    """Uploads ``local`` (a folder's files, or one file) into model repo ``repo_id`` in one commit.

    A folder's files land under ``path_in_repo`` with their layout kept (a
    root ``_MANIFEST.json`` is left out: the commit is the Hub's commit
    point); a single file lands at ``path_in_repo/<name>`` — top level by
    default, where GGUF repositories keep their file. ``readme`` (the model
    card, YAML metadata first) becomes the repository's ``README.md`` in the
    same commit, replacing one in ``local``. ``token_field`` names the spec
    field the token came from, for error messages.
    """
    repo = _repo(repo_id)
    prefix = _prefix(path_in_repo, repo_id)
    uploads = _uploads(Path(local), prefix, has_readme=readme is not None)
    if not token.strip():
        raise StorageError(
            "AccessDenied",
            f"cannot publish to {repo}: no token; set {token_field} to a Hub token with write access",
        )
    settings = hub_settings(token)
    ctx = HubContext(repo=repo, action="publish to", settings=settings, token_field=token_field, write=True)
    with hub_errors(ctx):
        api = _api(settings)
        created = _ensure_repo(api, repo, private=private)
        operations = _operations(uploads, readme)
        info = api.create_commit(
            repo.repo_id, operations, commit_message=commit_message, revision=BRANCH, repo_type="model"
        )
    sha = str(info.oid)
    base = repo.web_url(settings.endpoint)
    files = [_published(base, sha, target, source) for target, source in uploads]
    if readme is not None:
        data = readme.encode()
        files.append(PublishedFile(README, len(data), _sha256(data), f"{base}/resolve/{sha}/{README}"))
    return HubPublishResult(repo.repo_id, sha, base, f"{base}/commit/{sha}", tuple(files), created)


def hub_file_sha256(
    repo_id: str,
    path: str,
    *,
    token: str,
    revision: str = BRANCH,
    token_field: str = DEFAULT_TOKEN_FIELD,
) -> str | None:
    """The sha256 of ``path`` in model repo ``repo_id`` at ``revision``; None if any of them is missing.

    For reuse checks before publishing: LFS files (weights, GGUF) are
    answered from the Hub's listing; small git files are downloaded and
    hashed. A refused token raises StorageError(AccessDenied).
    """
    from huggingface_hub import errors as hf
    from huggingface_hub.hf_api import RepoFile

    repo = HubRepo("model", _repo(repo_id).repo_id, path)
    settings = hub_settings(token)
    ctx = HubContext(repo=repo, action="read", settings=settings, token_field=token_field, revision=revision)
    with hub_errors(ctx):
        api = _api(settings)
        try:
            infos = api.get_paths_info(repo.repo_id, [path], revision=revision, repo_type="model")
        except hf.GatedRepoError:
            raise
        except (hf.RepositoryNotFoundError, hf.RevisionNotFoundError):
            return None
        found = next((i for i in infos if isinstance(i, RepoFile)), None)
        if found is None:
            return None
        if found.lfs is not None:
            return str(found.lfs.sha256)
        return _download_sha256(api, repo, revision, settings)


def _download_sha256(api: Any, repo: HubRepo, revision: str, settings: HubSettings) -> str:
    from huggingface_hub import hf_hub_download

    with tempfile.TemporaryDirectory(prefix="tuneforge-hub-") as tmp:
        got = hf_hub_download(
            repo.repo_id,
            repo.path,
            revision=revision,
            local_dir=tmp,
            token=settings.token,
            endpoint=settings.endpoint,
            library_name=LIBRARY_NAME,
        )
        return hash_file(Path(got)).sha256


def _api(settings: HubSettings) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=settings.endpoint, token=settings.token, library_name=LIBRARY_NAME)


def _repo(repo_id: str) -> HubRepo:
    uri = parse_uri(f"hf://{repo_id}")
    repo = HubRepo.from_uri(uri)
    if repo.repo_type != "model" or repo.path:
        raise StorageError(
            "InvalidUri", f"invalid Hub repository {repo_id!r}: give a model repository id, org/name"
        )
    return repo


def _prefix(path_in_repo: str, repo_id: str) -> str:
    prefix = path_in_repo.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise StorageError(
            "InvalidUri",
            f"cannot publish to hf://{repo_id}: the path in the repository {path_in_repo!r} "
            "has an empty, '.' or '..' part",
        )
    return prefix


def _uploads(local: Path, prefix: str, *, has_readme: bool) -> list[tuple[str, Path]]:
    """``(path in repo, local file)`` for everything to upload."""
    if local.is_file():
        pairs = [(local.name, local)]
    elif local.is_dir():
        pairs = local_files(local)
    else:
        raise StorageError("NotFound", f"cannot publish {local}: no such file or folder")
    if not pairs:
        raise StorageError("NotFound", f"cannot publish {local}: the folder has no files")
    targets = [(f"{prefix}/{rel}" if prefix else rel, path) for rel, path in pairs]
    return [(target, path) for target, path in targets if not (has_readme and target == README)]


def _ensure_repo(api: Any, repo: HubRepo, *, private: bool) -> bool:
    """Creates the repository if it is missing; refuses to put a private artifact into a public one."""
    from huggingface_hub import errors as hf

    try:
        info = api.repo_info(repo.repo_id, repo_type="model")
    except hf.RepositoryNotFoundError as exc:
        if isinstance(exc, hf.GatedRepoError) or getattr(exc.response, "status_code", 0) != 404:
            raise
        api.create_repo(repo.repo_id, private=private, repo_type="model", exist_ok=True)
        return True
    if private and info.private is False:
        raise StorageError(
            "NotSupported",
            f"cannot publish to {repo}: the repository exists and is public, but the destination asks for a "
            "private one; make the repository private on the Hub, or set private: false",
        )
    return False


def _operations(uploads: list[tuple[str, Path]], readme: str | None) -> list[Any]:
    from huggingface_hub import CommitOperationAdd

    operations = [
        CommitOperationAdd(path_in_repo=target, path_or_fileobj=str(path)) for target, path in uploads
    ]
    if readme is not None:
        operations.append(CommitOperationAdd(path_in_repo=README, path_or_fileobj=readme.encode()))
    return operations


def _published(base: str, sha: str, target: str, source: Path) -> PublishedFile:
    digest = hash_file(source)
    return PublishedFile(target, digest.size, digest.sha256, f"{base}/resolve/{sha}/{quote(target)}")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
