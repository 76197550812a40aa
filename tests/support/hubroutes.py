"""The HTTP side of the Hub test double: the routes huggingface_hub calls, answered from a HubState.

Errors carry the Hub's headers (``X-Error-Code``, ``X-Error-Message``) so
that huggingface_hub raises its real exception types: RepositoryNotFoundError,
GatedRepoError, RevisionNotFoundError, RemoteEntryNotFoundError, HfHubHTTPError.

Access rules, as the Hub applies them: an unknown token is refused with 401
everywhere; a private repository answers 401 RepoNotFound without a token and
403 to a token that has no grant for it; a gated one serves its metadata to
anyone but its files only to granted tokens (401/403 GatedRepo); writes need a
granted token with write access.

Large and binary files live in LFS: ``/resolve`` answers them with a 302 to a
"CDN" origin (another port, as the real Hub redirects to another host) that
needs no token, with X-Linked-Etag (sha256) and X-Linked-Size on the redirect.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import threading
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import yaml
from aiohttp import web

from support.hubrepos import Blob, Commit, HubState, Repo, RepoType, git_blob_id, wants_lfs

logger = logging.getLogger(__name__)

_TYPES: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
_REPO = r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)"
_PREFIX = r"(?:(?P<prefix>datasets|spaces)/)?"
_API = re.compile(rf"^/api/(?P<type>models|datasets|spaces)/{_REPO}(?P<rest>/.*)?$")
_RESOLVE = re.compile(rf"^/{_PREFIX}{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_LFS_BATCH = re.compile(rf"^/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch$")
_CDN = re.compile(rf"^/_cdn/{_PREFIX}{_REPO}/(?P<oid>[0-9a-f]{{64}})/(?P<path>.+)$")
_LFS_PUT = re.compile(r"^/_lfs/(?P<oid>[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_FAKE_DATE = "2026-11-01T00:00:00.000Z"


@dataclass(frozen=True)
class Record:
    """One request the double answered."""

    method: str
    path: str
    status: int
    origin: str
    """"api", "cdn" or "tls": which listener took it."""


@dataclass
class Hold:
    """A download the double stops half-way until ``release`` is set (``reached`` says it got there)."""

    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return web.json_response({"error": message}, status=status, headers=headers)


def _repo_type(prefix: str | None) -> RepoType:
    return "model" if prefix is None else _TYPES[prefix]


class HubRoutes:
    """One aiohttp handler for every listener of the double."""

    def __init__(self, state: HubState, cdn_base: Callable[[web.Request], str]) -> None:
        self.state = state
        self._cdn_base = cdn_base
        self.records: list[Record] = []
        self.unhandled: list[str] = []
        self.internal_errors: list[str] = []
        self.holds: dict[tuple[RepoType, str, str], Hold] = {}
        self.stopping = threading.Event()
        self.origins: dict[int, str] = {}
        self.static: dict[str, tuple[int, bytes, dict[str, str]]] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._dispatch(request)
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            logger.exception("hub double: %s %s", request.method, request.path)
            response = _error(500, "internal error of the Hub double")
        port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
        self.records.append(
            Record(request.method, request.path, response.status, self.origins.get(port, "?"))
        )
        return response

    # --- dispatch ------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.rel_url.raw_path, request.method
        if path == "/api/agent-harnesses" and method == "GET":
            return web.json_response({"harnesses": {}, "standardEnvVars": []})
        if path == "/api/whoami-v2" and method == "GET":
            return self._whoami(request)
        if path == "/api/repos/create" and method == "POST":
            return await self._create_repo(request)
        if path == "/api/validate-yaml" and method == "POST":
            return await self._validate_yaml(request)
        if path == "/_lfs-verify" and method == "POST":
            return await self._lfs_verify(request)
        if path.startswith("/_static/") and method in ("GET", "HEAD") and path in self.static:
            status, body, headers = self.static[path]
            return web.Response(status=status, body=None if method == "HEAD" else body, headers=headers)
        if (m := _LFS_PUT.match(path)) and method == "PUT":
            return await self._lfs_put(request, m["oid"])
        if (m := _CDN.match(path)) and method in ("GET", "HEAD"):
            return await self._cdn(request, _repo_type(m["prefix"]), m["repo"], m["oid"], unquote(m["path"]))
        if (m := _RESOLVE.match(path)) and method in ("GET", "HEAD"):
            repo_type = _repo_type(m["prefix"])
            return await self._resolve(request, repo_type, m["repo"], unquote(m["rev"]), unquote(m["path"]))
        if (m := _LFS_BATCH.match(path)) and method == "POST":
            return await self._lfs_batch(request, _repo_type(m["prefix"]), m["repo"])
        if m := _API.match(path):
            handled = await self._api(request, _TYPES[m["type"]], m["repo"], m["rest"] or "")
            if handled is not None:
                return handled
        self.unhandled.append(f"{method} {path}")
        return _error(404, f"the Hub double does not serve {method} {path}")

    async def _api(
        self, request: web.Request, repo_type: RepoType, repo_id: str, rest: str
    ) -> web.StreamResponse | None:
        parts = rest.split("/", 3)  # "", verb, revision, path
        verb = parts[1] if len(parts) > 1 else ""
        revision = unquote(parts[2]) if len(parts) > 2 else "main"
        routes: dict[tuple[str, str], Callable[[], Awaitable[web.StreamResponse]]] = {
            ("GET", ""): lambda: self._info(request, repo_type, repo_id, "main"),
            ("GET", "revision"): lambda: self._info(request, repo_type, repo_id, revision),
            ("GET", "tree"): lambda: self._tree(request, repo_type, repo_id, revision, _tail(parts)),
            ("POST", "paths-info"): lambda: self._paths_info(request, repo_type, repo_id, revision),
            ("POST", "preupload"): lambda: self._preupload(request, repo_type, repo_id, revision),
            ("POST", "commit"): lambda: self._commit(request, repo_type, repo_id, revision),
        }
        route = routes.get((request.method, verb))
        return await route() if route else None

    # --- access --------------------------------------------------------------

    def _token(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        header = request.headers.get("Authorization", "")
        if not header:
            return None, None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or self.state.grant(token) is None:
            return token or None, _error(401, "Invalid credentials in Authorization header")
        return token, None

    def _access(
        self,
        request: web.Request,
        repo_type: RepoType,
        repo_id: str,
        *,
        write: bool = False,
        files: bool = False,
    ) -> tuple[Repo | None, web.Response | None]:
        token, refused = self._token(request)
        if refused is not None:
            return None, refused
        repo = self.state.repo(repo_type, repo_id)
        grant = self.state.grant(token)
        granted = grant is not None and grant.covers(repo_id)
        if repo is None or (repo.private and token is None):
            # As on the Hub: without a token, a private repo looks like a missing one.
            return None, _error(401 if token is None else 404, "Repository not found", "RepoNotFound")
        if repo.private and not granted:
            return None, _error(403, f"The token has no access to {repo_type} {repo_id}")
        if write and not (granted and grant is not None and grant.write):
            if token is None:
                return None, _error(401, "You must be authenticated to write to this repository")
            return None, _error(403, f"The token may not write to {repo_type} {repo_id}")
        if files and repo.gated and not granted:
            kind = "model" if repo_type == "model" else repo_type
            if token is None:
                message = f"Access to {kind} {repo_id} is restricted. You must be authenticated to access it."
                return None, _error(401, message, "GatedRepo")
            message = f"Access to {kind} {repo_id} is restricted and you are not in the authorized list."
            return None, _error(403, message, "GatedRepo")
        return repo, None

    @staticmethod
    def _revision(repo: Repo, revision: str) -> tuple[Commit | None, web.Response | None]:
        commit = repo.resolve(revision)
        if commit is None:
            return None, _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit, None

    # --- reads ---------------------------------------------------------------

    def _whoami(self, request: web.Request) -> web.Response:
        token, refused = self._token(request)
        if refused is not None or token is None:
            return refused or _error(401, "You must be authenticated")
        grant = self.state.grant(token)
        role = "write" if grant and grant.write else "read"
        return web.json_response(
            {"type": "user", "name": "tuneforge-tests", "orgs": [], "auth": {"accessToken": {"role": role}}}
        )

    async def _info(self, request: web.Request, repo_type: RepoType, repo_id: str, rev: str) -> web.Response:
        repo, refused = self._access(request, repo_type, repo_id)
        if refused is not None or repo is None:
            return refused or _error(500, "unreachable")
        commit, missing = self._revision(repo, rev)
        if missing is not None or commit is None:
            return missing or _error(500, "unreachable")
        blobs = request.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=blob.size, blobId=blob.git_id)
                if blob.lfs:
                    sibling["lfs"] = {
                        "sha256": blob.sha256,
                        "size": blob.size,
                        "pointerSize": len(blob.pointer),
                    }
            siblings.append(sibling)
        return web.json_response(
            {
                "_id": git_blob_id(f"{repo_type}/{repo_id}".encode())[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.sha,
                "private": repo.private,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "lastModified": _FAKE_DATE,
                "createdAt": _FAKE_DATE,
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": siblings,
            }
        )

    async def _tree(
        self, request: web.Request, repo_type: RepoType, repo_id: str, rev: str, under: str
    ) -> web.Response:
        repo, refused = self._access(request, repo_type, repo_id)
        if refused is not None or repo is None:
            return refused or _error(500, "unreachable")
        commit, missing = self._revision(repo, rev)
        if missing is not None or commit is None:
            return missing or _error(500, "unreachable")
        folders = commit.folders()
        if under and under not in folders:
            return _error(404, f"{under} does not exist on {rev}", "EntryNotFound")
        recursive = request.query.get("recursive", "").lower() in ("1", "true")
        prefix = f"{under}/" if under else ""

        def listed(path: str) -> bool:
            rest = path[len(prefix) :]
            return path.startswith(prefix) and bool(rest) and (recursive or "/" not in rest)

        entries: list[dict[str, object]] = [
            {"type": "directory", "oid": git_blob_id(f.encode()), "size": 0, "path": f}
            for f in sorted(folders)
            if listed(f)
        ]
        entries += [blob.tree_entry(p) for p, blob in sorted(commit.files.items()) if listed(p)]
        return web.json_response(entries)

    async def _paths_info(
        self, request: web.Request, repo_type: RepoType, repo_id: str, rev: str
    ) -> web.Response:
        repo, refused = self._access(request, repo_type, repo_id)
        if refused is not None or repo is None:
            return refused or _error(500, "unreachable")
        commit, missing = self._revision(repo, rev)
        if missing is not None or commit is None:
            return missing or _error(500, "unreachable")
        form = await request.post()
        folders = commit.folders()
        out: list[dict[str, object]] = []
        for path in (str(p) for p in form.getall("paths", [])):
            if path in commit.files:
                out.append(commit.files[path].tree_entry(path))
            elif path in folders:
                out.append({"type": "directory", "oid": git_blob_id(path.encode()), "path": path})
        return web.json_response(out)

    async def _resolve(
        self, request: web.Request, repo_type: RepoType, repo_id: str, rev: str, path: str
    ) -> web.StreamResponse:
        repo, refused = self._access(request, repo_type, repo_id, files=True)
        if refused is not None or repo is None:
            return refused or _error(500, "unreachable")
        commit, missing = self._revision(repo, rev)
        if missing is not None or commit is None:
            return missing or _error(500, "unreachable")
        blob = commit.files.get(path)
        if blob is None:
            return _error(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{blob.git_id}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            where = f"{self._cdn_base(request)}/_cdn/{repo.url_prefix}{repo_id}/{blob.sha256}/{quote(path)}"
            headers.update(
                {"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size), "Location": where}
            )
            return web.Response(status=302, headers=headers)
        return await self._send(request, blob.data, headers, (repo_type, repo_id, path))

    async def _cdn(
        self, request: web.Request, repo_type: RepoType, repo_id: str, oid: str, path: str
    ) -> web.StreamResponse:
        with self.state.lock:
            data = self.state.lfs.get(oid)
        if data is None:
            return _error(404, "no such object")
        return await self._send(request, data, {"ETag": f'"{oid}"'}, (repo_type, repo_id, path))

    async def _send(
        self, request: web.Request, data: bytes, headers: dict[str, str], key: tuple[RepoType, str, str]
    ) -> web.StreamResponse:
        start, end = 0, len(data)
        status = 200
        if (m := _RANGE.match(request.headers.get("Range", ""))) is not None:
            start = int(m[1])
            end = min(int(m[2]) + 1, len(data)) if m[2] else len(data)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        body = data[start:end]
        if request.method == "HEAD":
            return web.Response(status=status, headers={**headers, "Content-Length": str(len(body))})
        hold = self.holds.get(key)
        if hold is None:
            return web.Response(status=status, body=body, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        half = len(body) // 2
        await response.write(body[:half])
        hold.reached.set()
        while not (hold.release.is_set() or self.stopping.is_set()):
            await asyncio.sleep(0.02)
        try:
            await response.write(body[half:])
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away while held (the point of most holds)
        return response

    # --- writes --------------------------------------------------------------

    async def _create_repo(self, request: web.Request) -> web.Response:
        token, refused = self._token(request)
        if refused is not None:
            return refused
        body = await request.json()
        name, organization = str(body.get("name", "")), body.get("organization")
        repo_id = f"{organization}/{name}" if organization else name
        repo_type: RepoType = body.get("type") or "model"
        if "/" not in repo_id:
            return _error(400, "the double only knows namespaced repos (org/name)")
        grant = self.state.grant(token)
        if token is None:
            return _error(401, "You must be authenticated to create a repository")
        existing = self.state.repo(repo_type, repo_id)
        base = f"{request.scheme}://{request.host}"
        url = f"{base}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
        if existing is not None:
            return web.json_response({"error": "You already created this repo", "url": url}, status=409)
        if grant is None or not grant.write or not grant.covers(repo_id):
            return _error(403, f"You don't have the rights to create a {repo_type} under this namespace")
        private = body.get("visibility", "private" if body.get("private") else "public") == "private"
        self.state.create_repo(repo_type, repo_id, private=private)
        return web.json_response({"url": url, "name": repo_id, "id": repo_id})

    async def _preupload(
        self, request: web.Request, repo_type: RepoType, repo_id: str, rev: str
    ) -> web.Response:
        repo, refused = self._access(request, repo_type, repo_id, write=True)
        if refused is not None or repo is None:
            return refused or _error(500, "unreachable")
        commit, missing = self._revision(repo, rev)
        if missing is not None or commit is None:
            return missing or _error(500, "unreachable")
        files = []
        for item in (await request.json())["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = wants_lfs(item["path"], int(item["size"]), sample)
            current = commit.files.get(item["path"])
            oid = None if current is None else (current.sha256 if current.lfs else current.git_id)
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        return web.json_response({"files": files, "commitOid": commit.sha})

    async def _lfs_batch(self, request: web.Request, repo_type: RepoType, repo_id: str) -> web.Response:
        _, refused = self._access(request, repo_type, repo_id, write=True)
        if refused is not None:
            return refused
        body = await request.json()
        if body.get("operation") != "upload":
            return _error(400, "the double only serves LFS uploads")
        cdn = self._cdn_base(request)
        objects = []
        for obj in body["objects"]:
            oid, size = str(obj["oid"]), int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            with self.state.lock:
                present = oid in self.state.lfs
            if not present:
                entry["actions"] = {
                    "upload": {"href": f"{cdn}/_lfs/{oid}", "header": {}},
                    "verify": {"href": f"{cdn}/_lfs-verify", "header": {}},
                }
            objects.append(entry)
        return web.json_response(
            {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json"
        )

    async def _lfs_put(self, request: web.Request, oid: str) -> web.Response:
        data = await request.read()
        if Blob(data, lfs=True).sha256 != oid:
            return _error(400, "the uploaded bytes do not match the object id")
        with self.state.lock:
            self.state.lfs[oid] = data
        return web.Response(status=200)

    async def _lfs_verify(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self.state.lock:
            data = self.state.lfs.get(str(body.get("oid")))
        if data is None or len(data) != body.get("size"):
            return _error(404, "object not uploaded")
        return web.json_response({"message": "ok"})

    async def _commit(
        self, request: web.Request, repo_type: RepoType, repo_id: str, rev: str
    ) -> web.Response:
        repo, refused = self._access(request, repo_type, repo_id, write=True)
        if refused is not None or repo is None:
            return refused or _error(500, "unreachable")
        if request.query.get("create_pr"):
            return _error(400, "the double does not do pull requests")
        if rev not in repo.branches:
            return _error(404, f"Invalid rev id: {rev} (commits go to a branch)", "RevisionNotFound")
        lines = [json.loads(line) for line in (await request.text()).splitlines() if line.strip()]
        header: dict[str, Any] = next((line["value"] for line in lines if line["key"] == "header"), {})
        head = repo.refs[rev]
        if header.get("parentCommit") not in (None, head):
            return _error(412, "A commit has happened since. Please refresh and try again.")
        changes, problem = self._changes(repo.commits[head], lines)
        if problem is not None:
            return problem
        commit = self.state.commit(repo, rev, changes, str(header.get("summary", "")))
        url = f"{request.scheme}://{request.host}/{repo.url_prefix}{repo_id}/commit/{commit.sha}"
        return web.json_response(
            {
                "success": True,
                "commitOid": commit.sha,
                "commitUrl": url,
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    def _changes(
        self, head: Commit, lines: list[dict[str, Any]]
    ) -> tuple[dict[str, Blob | None], web.Response | None]:
        changes: dict[str, Blob | None] = {}
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                try:
                    data = base64.b64decode(value["content"], validate=True)
                except binascii.Error:
                    return {}, _error(400, f"{value['path']}: content is not base64")
                changes[value["path"]] = Blob(data, lfs=False)
            elif key == "lfsFile":
                with self.state.lock:
                    data_or_none = self.state.lfs.get(value["oid"])
                if data_or_none is None:
                    return {}, _error(422, f"{value['path']}: LFS object {value['oid']} was never uploaded")
                changes[value["path"]] = Blob(data_or_none, lfs=True)
            elif key == "deletedFile":
                changes[value["path"]] = None
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                changes.update({p: None for p in head.files if p.startswith(folder)})
            elif key != "header":
                return {}, _error(400, f"the double does not know commit operation {key!r}")
        return changes, None

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        body = await request.json()
        content = str(body.get("content", ""))
        match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        if match is None:
            return web.json_response({"errors": [], "warnings": []})
        try:
            metadata = yaml.safe_load(match[1])
        except yaml.YAMLError as exc:
            return web.json_response({"errors": [{"message": f"invalid YAML: {exc}"}]}, status=400)
        if metadata is not None and not isinstance(metadata, dict):
            return web.json_response({"errors": [{"message": "metadata must be a YAML mapping"}]}, status=400)
        return web.json_response({"errors": [], "warnings": []})


def _tail(parts: list[str]) -> str:
    return unquote(parts[3]).strip("/") if len(parts) > 3 else ""
