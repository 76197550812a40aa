"""Turns exceptions of fsspec, s3fs/botocore, gcsfs/google-auth and the OS into StorageErrors.

Each message names the URI, what failed and what to do about it. The
libraries are imported lazily: the classes are only needed once something
went wrong.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from tuneforge.storage.backends import endpoint_for
from tuneforge.storage.errors import Reason, StorageError
from tuneforge.storage.uri import StorageUri

_S3_ACCESS_CODES: Final = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AllAccessDisabled",
    }
)
_S3_MISSING_CODES: Final = frozenset({"NoSuchBucket", "NoSuchKey", "NotFound", "404"})
_DETAIL_MAX: Final = 300


@contextmanager
def translating(uri: StorageUri, action: str) -> Iterator[None]:
    """Re-raises any exception in the block as a StorageError about ``action`` on ``uri``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise to_storage_error(exc, uri, action) from exc


def to_storage_error(exc: BaseException, uri: StorageUri, action: str) -> StorageError:
    reason = classify(exc)
    return StorageError(reason, message(reason, uri, action, _detail(exc)))


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def classify(exc: BaseException) -> Reason:
    """The StorageError reason for a library or OS exception."""
    for check in (_classify_builtin, _classify_botocore, _classify_google, _classify_aiohttp):
        reason = check(exc)
        if reason is not None:
            return reason
    if isinstance(exc, OSError) and str(exc).startswith("Forbidden"):
        return "AccessDenied"  # gcsfs raises a bare OSError("Forbidden: ...") for HTTP 403
    return "TransferFailed"


def _classify_builtin(exc: BaseException) -> Reason | None:
    if isinstance(exc, FileNotFoundError):
        return "NotFound"
    if isinstance(exc, PermissionError):
        return "AccessDenied"
    if isinstance(exc, NotADirectoryError | IsADirectoryError):
        return "InvalidUri"
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return "Unreachable"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED):
        return "Unreachable"
    return None


def _classify_botocore(exc: BaseException) -> Reason | None:
    from botocore import exceptions as bce

    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError | bce.CredentialRetrievalError):
        return "AccessDenied"
    if isinstance(exc, bce.ConnectionError | bce.HTTPClientError):
        return "Unreachable"
    if isinstance(exc, bce.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _S3_ACCESS_CODES:
            return "AccessDenied"
        if code in _S3_MISSING_CODES:
            return "NotFound"
        return "TransferFailed"
    return None


def _classify_google(exc: BaseException) -> Reason | None:
    import google.auth.exceptions
    from gcsfs.retry import HttpError

    if isinstance(exc, google.auth.exceptions.GoogleAuthError):
        return "AccessDenied"
    if isinstance(exc, HttpError):
        return _by_status(exc.code)
    return None


def _classify_aiohttp(exc: BaseException) -> Reason | None:
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        return _by_status(exc.status)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "Unreachable"
    return None


def _by_status(code: object) -> Reason:
    status = int(code) if isinstance(code, int | str) and str(code).isdigit() else 0
    if status in (401, 403):
        return "AccessDenied"
    if status == 404:
        return "NotFound"
    if status >= 500 or status in (408, 429):
        return "Unreachable"
    return "TransferFailed"


def message(reason: Reason, uri: StorageUri, action: str, detail: str) -> str:
    """What went wrong with ``action`` on ``uri`` and what to do, for one reason."""
    where = endpoint_for(uri.scheme).describe()
    spec = "spec.storage.s3" if uri.scheme == "s3" else "spec.storage.gcs"
    if reason == "NotFound":
        hint = "check the path" if uri.scheme == "file" else "check the key; does the bucket exist?"
        return f"cannot {action} {uri}: not found on {where} ({detail}); {hint}"
    if reason == "AccessDenied":
        return f"cannot {action} {uri}: access denied by {where} ({detail}); {_access_hint(uri)}"
    if reason == "Unreachable":
        return (
            f"cannot {action} {uri}: cannot reach {where} ({detail}); check {spec}.endpoint "
            "and that the store is up and reachable from the pod"
        )
    if reason == "InvalidUri":
        return (
            f"cannot {action} {uri}: {detail}; a file stands where a folder is needed, or the other way round"
        )
    if reason == "TransferFailed" and "No space left" in detail:
        return f"cannot {action} {uri}: {detail}; give the workspace volume more room"
    return f"cannot {action} {uri} on {where}: {detail}"


def _access_hint(uri: StorageUri) -> str:
    if uri.scheme == "s3":
        return (
            "check the Secret named by spec.storage.s3.credentialsSecret (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY) or the pod's IAM role, and that it may use this bucket"
        )
    if uri.scheme == "gs":
        return (
            "check the service-account key in spec.storage.gcs.credentialsSecret (key.json) or the "
            "pod's Workload Identity, and its roles on this bucket"
        )
    return f"the process runs as uid {os.getuid()}; make the path readable (and writable for outputs)"
