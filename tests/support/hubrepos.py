"""The state behind the Hub test double: repositories, commits, blobs, tokens. Pure; no HTTP.

Modelled on what the Hub exposes through its API: a repository is a set of
refs (branches and tags) pointing at commits; a commit is a full snapshot
``path -> blob``; a blob is stored in git (small text) or in LFS (large or
binary, addressed by sha256). Ids are computed the way the Hub computes
them: a git blob id is the sha1 of ``"blob <size>\\0" + content``, an LFS
file's tree id is the git id of its pointer file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

RepoType = Literal["model", "dataset", "space"]

# What a new repository's .gitattributes sends to LFS (a subset of the Hub's default).
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.gguf", "*.gz", "*.h5", "*.joblib", "*.model",
    "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth",
    "*.safetensors", "*.tar", "*.tflite", "*.zip", "*.zst",
)  # fmt: skip
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS)
LFS_MIN_SIZE = 10 * 1024 * 1024
"""Files at least this big go to LFS whatever their name, as on the Hub."""


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def wants_lfs(path: str, size: int, sample: bytes) -> bool:
    """The Hub's choice for a new file: LFS for LFS-tracked names, big files and binary content."""
    name = path.rpartition("/")[2]
    return size >= LFS_MIN_SIZE or b"\0" in sample or any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS)


@dataclass(frozen=True)
class Blob:
    data: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def pointer(self) -> bytes:
        spec = "version https://git-lfs.github.com/spec/v1"
        return f"{spec}\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @cached_property
    def git_id(self) -> str:
        """The id git (and the tree listing) gives the file: of its content, or of its LFS pointer."""
        return git_blob_id(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:
        """What the Hub puts in X-Linked-Etag (LFS) or ETag (git): sha256 or git id."""
        return self.sha256 if self.lfs else self.git_id

    def tree_entry(self, path: str) -> dict[str, object]:
        entry: dict[str, object] = {"type": "file", "oid": self.git_id, "size": self.size, "path": path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(self.pointer)}
        return entry


@dataclass(frozen=True)
class Commit:
    sha: str
    files: Mapping[str, Blob]
    title: str
    parent: str | None

    def folders(self) -> set[str]:
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out


@dataclass
class Repo:
    repo_id: str
    repo_type: RepoType
    private: bool
    gated: bool
    refs: dict[str, str] = field(default_factory=dict)
    """Branches and tags -> commit sha."""
    branches: set[str] = field(default_factory=set)
    commits: dict[str, Commit] = field(default_factory=dict)

    @property
    def url_prefix(self) -> str:
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    def resolve(self, revision: str) -> Commit | None:
        """A branch, a tag, or a full commit sha."""
        sha = self.refs.get(revision, revision)
        return self.commits.get(sha)


@dataclass(frozen=True)
class Grant:
    patterns: tuple[str, ...]
    """Repo ids (``org/name``) or fnmatch patterns (``org/*``) the token may use."""
    write: bool

    def covers(self, repo_id: str) -> bool:
        return any(fnmatch.fnmatchcase(repo_id, p) for p in self.patterns)


class HubState:
    """Every repository, LFS object and token of one double. Thread-safe: the test and the server share it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[RepoType, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.tokens: dict[str, Grant] = {}
        self._counter = itertools.count(1)

    # --- repositories --------------------------------------------------------

    def repo(self, repo_type: RepoType, repo_id: str) -> Repo | None:
        with self.lock:
            return self.repos.get((repo_type, repo_id))

    def create_repo(self, repo_type: RepoType, repo_id: str, *, private: bool, gated: bool = False) -> Repo:
        """A new repository whose main branch holds one commit with a .gitattributes, as on the Hub."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            repo = Repo(repo_id, repo_type, private, gated)
            self.repos[(repo_type, repo_id)] = repo
            self.commit(
                repo, "main", {".gitattributes": Blob(GITATTRIBUTES.encode(), lfs=False)}, "initial commit"
            )
            return repo

    def commit(
        self,
        repo: Repo,
        branch: str,
        changes: Mapping[str, Blob | None],
        title: str,
        *,
        replace: bool = False,
    ) -> Commit:
        """Applies ``changes`` (None deletes) on top of ``branch`` (created if new); returns the commit."""
        with self.lock:
            parent = repo.resolve(branch) if branch in repo.refs else None
            files = {} if replace or parent is None else dict(parent.files)
            for path, blob in changes.items():
                if blob is None:
                    files.pop(path, None)
                else:
                    files[path] = blob
                    if blob.lfs:
                        self.lfs[blob.sha256] = blob.data
            seed = f"{repo.repo_type}/{repo.repo_id}/{next(self._counter)}/{title}".encode()
            digest = hashlib.sha1(seed, usedforsecurity=False)
            for path in sorted(files):
                digest.update(f"{path}\0{files[path].git_id}\n".encode())
            commit = Commit(digest.hexdigest(), files, title, parent.sha if parent else None)
            repo.commits[commit.sha] = commit
            repo.refs[branch] = commit.sha
            repo.branches.add(branch)
            return commit

    def tag(self, repo: Repo, tag: str, revision: str) -> str:
        with self.lock:
            commit = repo.resolve(revision)
            if commit is None:
                raise ValueError(f"no revision {revision!r} in {repo.repo_id}")
            repo.refs[tag] = commit.sha
            return commit.sha

    # --- tokens --------------------------------------------------------------

    def add_token(self, token: str, repos: Iterable[str], *, write: bool) -> None:
        with self.lock:
            self.tokens[token] = Grant(tuple(repos), write)

    def grant(self, token: str | None) -> Grant | None:
        with self.lock:
            return self.tokens.get(token) if token else None
