"""Fetching ``https://`` dataset files: one streaming GET, checked before it lands in DEST.

The file is requested without compression (``Accept-Encoding: identity``),
so the server's size and digest headers describe the very bytes received.
Checks, strongest first, wherever the server (or the redirect that led to
it) gives one: sha256 from ``Repr-Digest`` / ``Digest`` or the Hub's
``X-Linked-Etag``; md5 from ``Content-MD5`` or ``x-goog-hash``; the size from
``Content-Length`` or ``X-Linked-Size``. Redirects are followed, but never to
plain http. No credentials are sent: private data belongs on s3://, gs:// or
hf://, whose credentials come from Secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote

import httpx

from tuneforge import __version__
from tuneforge.storage.download import Check, FetchedFile, FetchResult
from tuneforge.storage.errors import StorageError
from tuneforge.storage.staging import move_into_place, safe_rel, staging
from tuneforge.storage.uri import StorageUri

TIMEOUT: Final = httpx.Timeout(60.0, connect=10.0)
RETRIES: Final = 2
"""Connection attempts retried by the transport (not HTTP errors)."""
_CHUNK: Final = 1 << 20
_SHA256_HEX: Final = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Expected:
    """What the server says the file is."""

    size: int | None = None
    sha256: str | None = None
    md5: str | None = None


def expected_from(headers: Iterable[Mapping[str, str]]) -> Expected:
    """Size and digests from the final response's headers and the redirects' (the Hub's are on its 302)."""
    size = sha256 = md5 = None
    for h in headers:
        if "content-encoding" not in h or h["content-encoding"] == "identity":
            size = size or _int(h.get("content-length"))
        size = size or _int(h.get("x-linked-size"))
        sha256 = sha256 or _digest(h.get("repr-digest"), "sha-256") or _digest(h.get("digest"), "sha-256")
        sha256 = sha256 or _sha256_etag(h.get("x-linked-etag"))
        md5 = md5 or _b64hex(h.get("content-md5")) or _goog_md5(h.get("x-goog-hash"))
    return Expected(size, sha256, md5)


def _lowered(headers: httpx.Headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _b64hex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value.strip().strip(":"), validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def _digest(header: str | None, algorithm: str) -> str | None:
    """RFC 9530 ``sha-256=:<b64>:`` (and the older RFC 3230 ``SHA-256=<b64>``)."""
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == algorithm:
            return _b64hex(value)
    return None


def _goog_md5(header: str | None) -> str | None:
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        if name == "md5":
            return _b64hex(value)
    return None


def _sha256_etag(value: str | None) -> str | None:
    etag = (value or "").removeprefix("W/").strip('"').lower()
    return etag if _SHA256_HEX.match(etag) else None


def fetch_https(
    uri: StorageUri, dest: Path, *, on_file: Callable[[FetchedFile], None] | None = None
) -> FetchResult:
    """Downloads the file ``uri`` names to ``dest/<name>``, checked against what the server says."""
    started = time.monotonic()
    url = str(uri)
    name = safe_rel(unquote(uri.name), url)
    if "/" in name:
        raise StorageError("InvalidUri", f"cannot fetch {url}: its file name {name!r} contains a '/'")
    with staging(Path(dest)) as stage, _client() as client, _errors(url):
        tmp = stage / name
        with client.stream("GET", url) as response:
            _check_response(url, response)
            expected = expected_from(_lowered(r.headers) for r in (*response.history, response))
            size, sha256, md5 = _save(response, tmp, want_md5=expected.md5 is not None)
        fetched = _verify(url, expected, size, sha256, md5, name, Path(dest))
        if on_file is not None:
            on_file(fetched)
        move_into_place([(tmp, fetched.path)])
    return FetchResult(url, Path(dest), (fetched,), time.monotonic() - started, manifest=False)


def _client() -> httpx.Client:
    return httpx.Client(
        follow_redirects=True,
        timeout=TIMEOUT,
        transport=httpx.HTTPTransport(retries=RETRIES),
        headers={"User-Agent": f"tuneforge/{__version__}", "Accept-Encoding": "identity"},
    )


def _check_response(url: str, response: httpx.Response) -> None:
    if response.url.scheme != "https":
        raise StorageError(
            "InvalidUri",
            f"cannot fetch {url}: the server redirected to {response.url.scheme}:// ({response.url.host}); "
            "an unencrypted download is refused — use a URL that stays on https://",
        )
    if response.status_code >= 400:
        raise _status_error(url, response.status_code, response.reason_phrase)


def _save(response: httpx.Response, tmp: Path, *, want_md5: bool) -> tuple[int, str, str | None]:
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False) if want_md5 else None
    size = 0
    with tmp.open("wb") as out:
        for chunk in response.iter_bytes(_CHUNK):
            out.write(chunk)
            sha256.update(chunk)
            if md5 is not None:
                md5.update(chunk)
            size += len(chunk)
    return size, sha256.hexdigest(), md5.hexdigest() if md5 is not None else None


def _verify(
    url: str, expected: Expected, size: int, sha256: str, md5: str | None, name: str, dest: Path
) -> FetchedFile:
    def corrupt(problem: str) -> StorageError:
        return StorageError(
            "Corrupt", f"cannot fetch {url}: {problem}; the download was damaged, fetch again"
        )

    if expected.size is not None and size != expected.size:
        raise corrupt(f"received {size} bytes, the server announced {expected.size}")
    if expected.sha256 is not None and sha256 != expected.sha256:
        raise corrupt(f"sha256 {sha256[:12]}… does not match the server's {expected.sha256[:12]}…")
    if expected.md5 is not None and md5 != expected.md5:
        raise corrupt(f"md5 {md5} does not match the server's {expected.md5}")
    check: Check = (
        "sha256"
        if expected.sha256
        else "md5"
        if expected.md5
        else "size"
        if expected.size is not None
        else "none"
    )
    return FetchedFile(name, dest / name, size, sha256, check)


def _status_error(url: str, status: int, phrase: str) -> StorageError:
    if status == 404 or status == 410:
        return StorageError(
            "NotFound",
            f"cannot fetch {url}: the server answered {status} {phrase}; check spec.dataset.source",
        )
    if status in (401, 403):
        return StorageError(
            "AccessDenied",
            f"cannot fetch {url}: the server answered {status} {phrase}; https:// sources are fetched "
            "without credentials — make the file public, or copy it to s3://, gs:// or hf:// and give "
            "their credentials through spec.storage or spec.dataset.tokenSecretRef",
        )
    if status >= 500 or status in (408, 429):
        return StorageError(
            "Unreachable",
            f"cannot fetch {url}: the server answered {status} {phrase}; it may be down or busy",
        )
    return StorageError("TransferFailed", f"cannot fetch {url}: the server answered {status} {phrase}")


@contextmanager
def _errors(url: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except httpx.ConnectError as exc:
        detail = " ".join(str(exc).split())
        hint = (
            "the server's TLS certificate is not trusted (set SSL_CERT_FILE to a CA bundle that has its CA)"
            if "CERTIFICATE_VERIFY_FAILED" in detail
            else "check the host name and that the pod may reach it (egress, NetworkPolicy, proxy)"
        )
        raise StorageError("Unreachable", f"cannot fetch {url}: cannot connect ({detail}); {hint}") from exc
    except (httpx.TransportError, httpx.TooManyRedirects) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise StorageError("Unreachable", f"cannot fetch {url}: the transfer failed ({detail})") from exc
    except OSError as exc:
        hint = "; give the workspace volume more room" if "No space left" in str(exc) else ""
        raise StorageError("TransferFailed", f"cannot fetch {url}: {exc}{hint}") from exc
