"""What fetching from and publishing to the Hugging Face Hub share: repo references, settings, errors.

huggingface_hub is imported lazily (``tuneforge fetch`` of an s3:// source
never pays for it). Settings come from the environment at call time, like
the rest of the storage layer: ``HF_ENDPOINT`` (a mirror or a test double;
default https://huggingface.co), ``HF_TOKEN`` (the Job passes the Secret
named by ``tokenSecretRef`` this way) and ``HF_HUB_DISABLE_XET``. The library
reads the first and the last only once, at its first import, so they are
handed to it explicitly on every call.

Every library error becomes a :class:`StorageError` whose message names the
repository, the spec field to fix and what to do — never the token.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

from tuneforge.storage.backends import hub_endpoint
from tuneforge.storage.errors import Reason, StorageError
from tuneforge.storage.uri import StorageUri

HubRepoType = Literal["model", "dataset"]
LIBRARY_NAME: Final = "tuneforge"
_DETAIL_MAX: Final = 300


@dataclass(frozen=True)
class HubRepo:
    """A repository on the Hub, and a path inside it ("" for the whole repository)."""

    repo_type: HubRepoType
    repo_id: str
    path: str = ""

    @classmethod
    def from_uri(cls, uri: StorageUri) -> HubRepo:
        """From a parsed ``hf://`` URI, whose ``bucket`` is ``[datasets/]org/name``."""
        if uri.bucket.startswith("datasets/"):
            return cls("dataset", uri.bucket.removeprefix("datasets/"), uri.path.strip("/"))
        return cls("model", uri.bucket, uri.path.strip("/"))

    def __str__(self) -> str:
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        return f"hf://{prefix}{self.repo_id}" + (f"/{self.path}" if self.path else "")

    def web_url(self, endpoint: str) -> str:
        prefix = "datasets/" if self.repo_type == "dataset" else ""
        return f"{endpoint}/{prefix}{self.repo_id}"

    @property
    def spec_prefix(self) -> str:
        """Where a FineTuneJob names this kind of source."""
        return "spec.dataset" if self.repo_type == "dataset" else "spec.model"


_xet_disabled_at_import: bool | None = None


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    token: str | None


def hub_settings(token: str | None = None) -> HubSettings:
    """The endpoint and token to use now; ``token`` overrides ``HF_TOKEN``.

    Also applies ``HF_HUB_DISABLE_XET`` to the already-imported library (it
    reads the variable once, at import, and would otherwise try Xet storage
    on a server that may not offer it).
    """
    from huggingface_hub import constants

    global _xet_disabled_at_import
    if _xet_disabled_at_import is None:
        _xet_disabled_at_import = bool(constants.HF_HUB_DISABLE_XET)
    flag = os.environ.get("HF_HUB_DISABLE_XET")
    constants.HF_HUB_DISABLE_XET = (
        _xet_disabled_at_import if flag is None else flag.strip().lower() in ("1", "true", "yes", "on")
    )
    chosen = token if token is not None else os.environ.get("HF_TOKEN", "")
    return HubSettings(hub_endpoint(), chosen.strip() or None)


@dataclass(frozen=True)
class HubContext:
    """What an error message needs to say where to look."""

    repo: HubRepo
    action: str
    """"fetch" or "publish to"."""
    settings: HubSettings
    token_field: str
    """The spec field that names the token's Secret."""
    revision: str | None = None
    revision_field: str = "spec.model.revision"
    write: bool = False


@contextmanager
def hub_errors(ctx: HubContext) -> Iterator[None]:
    """Re-raises any exception in the block as a StorageError about ``ctx.repo``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise translate(exc, ctx) from exc


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes: huggingface_hub wraps the HTTP error that matters (LocalEntryNotFoundError)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__]


def translate(exc: BaseException, ctx: HubContext) -> StorageError:
    """The StorageError for a huggingface_hub, httpx or OS exception."""
    from huggingface_hub import errors as hf

    chain = list(_chain(exc))
    for kind in (hf.GatedRepoError, hf.RevisionNotFoundError, hf.RemoteEntryNotFoundError, hf.HfHubHTTPError):
        found = next((e for e in chain if isinstance(e, kind)), None)
        if found is not None:
            return _http_error(found, _status(found), ctx)
    for item in chain:
        if _is_connection_error(item):
            return _error(
                "Unreachable",
                ctx,
                f"cannot reach the Hub at {ctx.settings.endpoint} ({_detail(item, ctx)}); check HF_ENDPOINT, "
                "and that the pod may reach the Hub (egress, NetworkPolicy, proxy)",
            )
        if isinstance(item, OSError) and item.errno == errno.ENOSPC:
            return _error("TransferFailed", ctx, f"{_detail(item, ctx)}; give the workspace volume more room")
    return _error("TransferFailed", ctx, f"the Hub client failed: {_detail(exc, ctx)}")


def _http_error(exc: Any, status: int, ctx: HubContext) -> StorageError:
    from huggingface_hub import errors as hf

    repo, field = ctx.repo.repo_id, ctx.token_field
    kind = ctx.repo.repo_type
    if isinstance(exc, hf.GatedRepoError):
        who = (
            "no token was given"
            if ctx.settings.token is None
            else f"the token in {field} was not granted access"
        )
        return _error(
            "AccessDenied",
            ctx,
            f"{repo} is a gated {kind} and {who}; accept its licence on the Hub "
            f"({ctx.repo.web_url(ctx.settings.endpoint)}) with the account that owns the token"
            + (f", and set {field}" if ctx.settings.token is None else ""),
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return _error(
            "NotFound",
            ctx,
            f"revision {ctx.revision or 'main'!r} does not exist in {repo}; "
            f"set {ctx.revision_field} to a branch, tag or full commit sha of the repository",
        )
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return _error(
            "NotFound", ctx, f"{ctx.repo.path or 'the file'!r} does not exist in {repo} at that revision"
        )
    if isinstance(exc, hf.RepositoryNotFoundError) and status != 404:
        return _error(
            "AccessDenied",
            ctx,
            f"the Hub says {kind} {repo} does not exist or is private, and no token was given; check "
            f"{ctx.repo.spec_prefix}.source (models are hf://org/name, datasets hf://datasets/org/name), "
            f"or, if it is private or gated, set {field} to a Secret key holding a Hub token with "
            f"{'write' if ctx.write else 'read'} access",
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return _error(
            "NotFound",
            ctx,
            f"{kind} repository {repo} does not exist on {ctx.settings.endpoint} (or it is private and the "
            f"token in {field} cannot see it); check {ctx.repo.spec_prefix}.source "
            "(models are hf://org/name, datasets hf://datasets/org/name)",
        )
    return _by_status(exc, status, ctx)


def _by_status(exc: BaseException, status: int, ctx: HubContext) -> StorageError:
    repo, field = ctx.repo.repo_id, ctx.token_field
    if status == 401:
        return _error(
            "AccessDenied",
            ctx,
            f"the Hub refused the token in {field} (invalid or expired); create a new token with "
            f"{'write' if ctx.write else 'read'} access and update the Secret",
        )
    if status == 403 and ctx.write:
        return _error(
            "AccessDenied",
            ctx,
            f"the token in {field} may not write to {repo}; use a token with write access to the "
            f"{repo.split('/')[0]!r} namespace",
        )
    if status == 403:
        return _error(
            "AccessDenied",
            ctx,
            f"the token in {field} has no access to {repo}; accept the {ctx.repo.repo_type}'s licence "
            "on the Hub or use a token with read access",
        )
    if status == 404:
        return _error("NotFound", ctx, f"the Hub answered 404 ({_detail(exc, ctx)})")
    if status >= 500 or status in (408, 429):
        return _error(
            "Unreachable",
            ctx,
            f"the Hub answered HTTP {status} ({_detail(exc, ctx)}); it may be down or rate-limiting",
        )
    return _error("TransferFailed", ctx, f"the Hub answered HTTP {status}: {_detail(exc, ctx)}")


def _status(exc: Any) -> int:
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


def _is_connection_error(exc: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled

    network = (httpx2.TransportError, ConnectionError, TimeoutError, OfflineModeIsEnabled)
    return isinstance(exc, network)


def _error(reason: Reason, ctx: HubContext, problem: str) -> StorageError:
    return StorageError(reason, _scrub(f"cannot {ctx.action} {ctx.repo}: {problem}", ctx.settings.token))


def _detail(exc: BaseException, ctx: HubContext) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = _scrub(text, ctx.settings.token)
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def _scrub(text: str, token: str | None) -> str:
    """Removes the token, should a library ever put it in a message."""
    return text.replace(token, "***") if token and len(token) >= 4 else text
