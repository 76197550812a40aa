"""A test double of the Hugging Face Hub's HTTP API, on 127.0.0.1 in its own thread.

No Hub server can be installed here, so this one answers what huggingface_hub
calls for ``snapshot_download`` / ``hf_hub_download`` (repo info, tree and
paths-info listings, HEAD/GET ``/resolve``), ``create_repo``, ``create_commit``
/ ``upload_folder`` / ``upload_file`` (preupload, the LFS batch API and PUT,
NDJSON commit, validate-yaml) and ``list_repo_files``, with the Hub's auth
rules for private and gated repositories (see ``support.hubroutes``).

Three listeners share one aiohttp app: ``endpoint`` (plain HTTP, the Hub API:
point ``HF_ENDPOINT`` at it), a "CDN" origin on another port (LFS downloads
and uploads, as the real Hub redirects to another host) and
``https_endpoint`` (TLS with a CA made for this instance, ``ca_file``) that
serves the same routes, for ``https://`` download tests.

Use: ``server.create_repo("org/name", private=True)``, ``server.seed(...)``
to commit a folder or a dict of files at a branch (and ``tag(...)``),
``server.add_token(token, repos=["org/*"], write=False)``, then read back with
``files(...)``, ``commit_sha(...)``, and count requests with ``records`` /
``downloads(...)``. ``hold(...)`` stops a file's download half-way.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from aiohttp import web

from support.hubrepos import Blob, HubState, Repo, RepoType, wants_lfs
from support.hubroutes import Hold, HubRoutes, Record
from support.kubeapi import tls

__all__ = ["Hold", "HubServer", "Record"]


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class HubServer:
    """One Hub double. ``start()`` / ``stop()``, or use it as a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.state = HubState()
        self._socks = {"api": _listener(), "cdn": _listener(), "tls": _listener()}
        ports = {name: sock.getsockname()[1] for name, sock in self._socks.items()}
        self.endpoint = f"http://127.0.0.1:{ports['api']}"
        self.cdn_endpoint = f"http://127.0.0.1:{ports['cdn']}"
        self.https_endpoint = f"https://127.0.0.1:{ports['tls']}"
        self.ca_file = workdir / "ca.crt"
        self.hf_home = workdir / "hf-home"
        # LFS redirects stay on TLS for a request that came over TLS, as the real Hub's do.
        self.routes = HubRoutes(
            self.state, lambda request: self.https_endpoint if request.secure else self.cdn_endpoint
        )
        self.routes.origins = {port: name for name, port in ports.items()}
        self._certs = tls.generate()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # --- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 10.0) -> HubServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.hf_home.mkdir(exist_ok=True)
        context = self._certs.server_context(self.workdir / "tls")
        self.ca_file.write_bytes(self._certs.ca_pem)
        self._thread = threading.Thread(target=self._run, args=(context,), name="hub-double", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            self.stop()
            raise RuntimeError("the Hub double did not start") from self._failure
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self.routes.stopping.set()
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        self._thread = None
        for sock in self._socks.values():
            sock.close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, context: ssl.SSLContext) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(context))
        except BaseException as exc:  # reported to start(); nothing else sees this thread's errors
            self._failure = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self, context: ssl.SSLContext) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self.routes.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await runner.setup()
        for name, sock in self._socks.items():
            await web.SockSite(runner, sock, ssl_context=context if name == "tls" else None).start()
        try:
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    # --- what a client needs -------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use this double through huggingface_hub (and trust its TLS listener)."""
        return {
            "HF_ENDPOINT": self.endpoint,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(self.hf_home),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "SSL_CERT_FILE": str(self.ca_file),
        }

    # --- setting up repositories ---------------------------------------------

    def create_repo(
        self, repo_id: str, *, private: bool = False, gated: bool = False, repo_type: RepoType = "model"
    ) -> str:
        """A new repository (main holds a .gitattributes commit); returns ``repo_id``."""
        self.state.create_repo(repo_type, repo_id, private=private, gated=gated)
        return repo_id

    def seed(
        self,
        repo_id: str,
        files: Path | Mapping[str, bytes],
        *,
        revision: str = "main",
        repo_type: RepoType = "model",
        message: str = "seed",
        tag: str | None = None,
    ) -> str:
        """Commits a local folder (or ``{path: bytes}``) as the whole content of branch ``revision``.

        The repository is created (public) if it does not exist; ``.gitattributes`` is kept. Large,
        binary and LFS-tracked files go to LFS, as on the Hub. Returns the commit sha.
        """
        repo = self._repo(repo_id, repo_type, create=True)
        content = _read_folder(files) if isinstance(files, Path) else dict(files)
        blobs: dict[str, Blob | None] = {
            path: Blob(data, lfs=wants_lfs(path, len(data), data[:512])) for path, data in content.items()
        }
        main = repo.resolve("main")
        if main is not None and ".gitattributes" in main.files:
            blobs.setdefault(".gitattributes", main.files[".gitattributes"])
        commit = self.state.commit(repo, revision, blobs, message, replace=True)
        if tag is not None:
            self.state.tag(repo, tag, commit.sha)
        return commit.sha

    def new_repo_id(self, name: str = "repo", *, org: str = "tuneforge-tests") -> str:
        """A repository id no test used before (the server lives for the whole session)."""
        return f"{org}/{name}-{uuid.uuid4().hex[:8]}"

    def tag(self, repo_id: str, tag: str, revision: str = "main", *, repo_type: RepoType = "model") -> str:
        return self.state.tag(self._repo(repo_id, repo_type), tag, revision)

    def add_token(self, token: str, repos: Iterable[str] = (), *, write: bool = True) -> str:
        """Makes ``token`` valid, with access to ``repos`` (ids or ``org/*`` patterns): read, write if asked.

        For a gated repository, access means the licence was accepted.
        """
        self.state.add_token(token, repos, write=write)
        return token

    # --- reading back --------------------------------------------------------

    def files(
        self, repo_id: str, revision: str | None = None, *, repo_type: RepoType = "model"
    ) -> dict[str, bytes]:
        """Every file of the repository at ``revision`` (default: main), path -> bytes."""
        commit = self._repo(repo_id, repo_type).resolve(revision or "main")
        if commit is None:
            raise KeyError(f"no revision {revision!r} in {repo_id}")
        return {path: blob.data for path, blob in commit.files.items()}

    def lfs_paths(
        self, repo_id: str, revision: str | None = None, *, repo_type: RepoType = "model"
    ) -> set[str]:
        commit = self._repo(repo_id, repo_type).resolve(revision or "main")
        assert commit is not None
        return {path for path, blob in commit.files.items() if blob.lfs}

    def commit_sha(self, repo_id: str, revision: str = "main", *, repo_type: RepoType = "model") -> str:
        commit = self._repo(repo_id, repo_type).resolve(revision)
        if commit is None:
            raise KeyError(f"no revision {revision!r} in {repo_id}")
        return commit.sha

    def commit_title(self, repo_id: str, revision: str = "main", *, repo_type: RepoType = "model") -> str:
        commit = self._repo(repo_id, repo_type).resolve(revision)
        assert commit is not None
        return commit.title

    def is_private(self, repo_id: str, *, repo_type: RepoType = "model") -> bool:
        return self._repo(repo_id, repo_type).private

    @property
    def records(self) -> list[Record]:
        """Every request answered so far, oldest first."""
        return list(self.routes.records)

    def downloads(self, repo_id: str, *, repo_type: RepoType = "model") -> list[str]:
        """Paths whose contents were served for this repo (GETs of /resolve or the CDN that sent bytes)."""
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        markers = (f"/{prefix}{repo_id}/resolve/", f"/_cdn/{prefix}{repo_id}/")
        out = []
        for record in self.records:
            if record.method != "GET" or record.status not in (200, 206):
                continue
            for marker in markers:
                if record.path.startswith(marker):
                    tail = record.path[len(marker) :].split("/", 1)[1]
                    out.append(tail)
        return sorted(out)

    @property
    def unhandled(self) -> list[str]:
        """Requests the double had no route for (a test expects none)."""
        return list(self.routes.unhandled)

    @property
    def internal_errors(self) -> list[str]:
        return list(self.routes.internal_errors)

    def serve_static(
        self, path: str, body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> str:
        """Serves ``body`` with ``headers`` at ``/_static/<path>`` on all listeners; returns its https URL."""
        self.routes.static[f"/_static/{path}"] = (status, body, dict(headers or {}))
        return f"{self.https_endpoint}/_static/{path}"

    def hold(self, repo_id: str, path: str, *, repo_type: RepoType = "model") -> Hold:
        """Makes the next downloads of ``path`` stop half-way until ``.release`` is set."""
        hold = Hold()
        self.routes.holds[(repo_type, repo_id, path)] = hold
        return hold

    def unhold(self, repo_id: str, path: str, *, repo_type: RepoType = "model") -> None:
        hold = self.routes.holds.pop((repo_type, repo_id, path), None)
        if hold is not None:
            hold.release.set()

    def _repo(self, repo_id: str, repo_type: RepoType, *, create: bool = False) -> Repo:
        repo = self.state.repo(repo_type, repo_id)
        if repo is None and create:
            repo = self.state.create_repo(repo_type, repo_id, private=False)
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id}")
        return repo


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }
