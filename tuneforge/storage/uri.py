"""Storage URIs: parsing, validation and joining. Pure; no I/O."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from tuneforge.storage.errors import StorageError

SUPPORTED: Final = ("file", "s3", "gs", "hf", "https")
LATER: Final = ("http", "pvc")
EXAMPLES: Final = (
    "file:///abs/path, file://relative/path, s3://bucket/key, gs://bucket/key, "
    "hf://org/name, hf://datasets/org/name or https://host/path/file"
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)
_SCHEME_NO_SLASHES = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!//)")
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_IP_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_MAX_KEY_BYTES: Final = 1024
_HINTS: Final = {"gcs": "gs", "google": "gs", "s3a": "s3", "s3n": "s3", "local": "file"}


def _invalid(uri: str, problem: str) -> StorageError:
    return StorageError("InvalidUri", f"invalid storage URI {uri!r}: {problem}. Use {EXAMPLES}.")


@dataclass(frozen=True)
class StorageUri:
    """A parsed URI. ``bucket`` is "" for file://; ``path`` keeps a trailing "/" if given.

    For file:// a relative ``path`` stays relative here and is resolved
    against the current directory by :attr:`local_path` when it is used.
    """

    scheme: str
    bucket: str
    path: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        return f"{self.scheme}://{self.bucket}/{self.path}" if self.path else f"{self.scheme}://{self.bucket}"

    @property
    def name(self) -> str:
        """The last path segment ("" for a bucket root)."""
        return self.path.rstrip("/").rpartition("/")[2]

    @property
    def parent(self) -> StorageUri:
        head = self.path.rstrip("/").rpartition("/")[0]
        if self.scheme == "file" and not head and self.path.startswith("/"):
            head = "/"
        return StorageUri(self.scheme, self.bucket, head)

    @property
    def local_path(self) -> Path:
        """The absolute local path of a file:// URI (relative ones against the current directory)."""
        if self.scheme != "file":
            raise ValueError(f"{self} is not a file:// URI")
        return Path(os.path.abspath(self.path))

    @property
    def fs_path(self) -> str:
        """The path as fsspec wants it: ``bucket/key`` or an absolute local path, no trailing "/"."""
        if self.scheme == "file":
            return str(self.local_path)
        key = self.path.rstrip("/")
        return f"{self.bucket}/{key}" if key else self.bucket

    def join(self, *parts: str) -> StorageUri:
        """Appends "/"-separated parts, e.g. ``uri.join("adapter", "config.json")``."""
        tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
        for segment in tail.split("/"):
            if segment in (".", ".."):
                raise _invalid(f"{self}/{tail}", f"path segment {segment!r} is not allowed in a joined part")
        if not tail:
            return self
        base = self.path.rstrip("/")
        if self.scheme == "file" and self.path.startswith("/") and not base:
            return StorageUri(self.scheme, self.bucket, f"/{tail}")  # file:/// + x -> file:///x
        return StorageUri(self.scheme, self.bucket, f"{base}/{tail}" if base else tail)


def parse_uri(uri: str) -> StorageUri:
    """Parses and validates ``uri``; raises StorageError(InvalidUri | NotSupported) naming the problem."""
    if not isinstance(uri, str) or not uri.strip():
        raise _invalid(str(uri), "it is empty")
    if uri != uri.strip():
        raise _invalid(uri, "it has leading or trailing whitespace")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise _invalid(uri, "it contains a control character")
    match = _SCHEME.match(uri)
    if not match:
        bare = _SCHEME_NO_SLASHES.match(uri)
        if bare:
            raise _invalid(uri, f"'{bare.group(1)}:' must be followed by '//'")
        raise _invalid(uri, "it has no scheme")
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme in LATER:
        raise StorageError(
            "NotSupported",
            f"{scheme}:// URIs are not supported yet by tuneforge fetch ({uri!r}); "
            f"copy the data to {', '.join(s + '://' for s in SUPPORTED)} first.",
        )
    if scheme not in SUPPORTED:
        hint = f" (did you mean {_HINTS[scheme]}://?)" if scheme in _HINTS else ""
        raise _invalid(uri, f"unknown scheme {scheme!r}{hint}; supported: {', '.join(SUPPORTED)}")
    if "?" in rest or "#" in rest:
        raise _invalid(uri, "'?' and '#' are not allowed (a storage URI has no query or fragment)")
    if scheme == "file":
        return _parse_file(uri, rest)
    if scheme == "hf":
        return _parse_hf(uri, rest)
    if scheme == "https":
        return _parse_https(uri, rest)
    return _parse_bucket(uri, scheme, rest)


def _parse_file(uri: str, path: str) -> StorageUri:
    if not path:
        raise _invalid(uri, "file:// needs a path")
    if "//" in path:
        raise _invalid(uri, "empty path segment ('//'); absolute paths are written file:///abs/path")
    return StorageUri("file", "", path)


def _parse_bucket(uri: str, scheme: str, rest: str) -> StorageUri:
    bucket, _, key = rest.partition("/")
    if "@" in bucket or ":" in bucket:
        shown = f"{scheme}://***@{bucket.rpartition('@')[2]}" if "@" in bucket else uri
        spec = "spec.storage.s3" if scheme == "s3" else "spec.storage.gcs"
        raise _invalid(
            shown, f"credentials or ports do not belong in the URI; set {spec} (endpoint, credentialsSecret)"
        )
    if not bucket:
        raise _invalid(uri, "the bucket name is missing")
    _check_bucket(uri, scheme, bucket)
    segments = key.split("/")
    if key and any(s == "" for s in segments[:-1]):
        raise _invalid(uri, "empty path segment ('//') in the object key")
    if any(s in (".", "..") for s in segments):
        raise _invalid(uri, "'.' and '..' segments are not allowed in an object key")
    if len(key.encode()) > _MAX_KEY_BYTES:
        raise _invalid(uri, f"the object key is longer than {_MAX_KEY_BYTES} bytes")
    return StorageUri(scheme, bucket, key)


def _check_bucket(uri: str, scheme: str, bucket: str) -> None:
    if scheme == "s3":
        ok = bool(_S3_BUCKET.match(bucket)) and ".." not in bucket and not _IP_LIKE.match(bucket)
        rule = "3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    else:
        parts_ok = all(0 < len(p) <= 63 for p in bucket.split("."))
        ok = bool(_GCS_BUCKET.match(bucket)) and parts_ok and (len(bucket) <= 63 or "." in bucket)
        rule = "3-63 lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    if not ok:
        raise _invalid(uri, f"bucket name {bucket!r} is not valid: use {rule}")


# A Hub namespace or repository name, as the Hub accepts them.
_HF_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_HF_NAME_RULE = (
    "use letters, digits, '-', '_' and '.' (at most 96), starting and ending with a letter or digit, "
    "without '--' or '..'"
)


def _parse_hf(uri: str, rest: str) -> StorageUri:
    """``hf://[models/|datasets/]org/name[/path/in/repo]``: ``bucket`` is ``[datasets/]org/name``."""
    if "@" in rest:
        raise _invalid(
            uri, "a revision does not belong in the URI; set spec.model.revision (tuneforge fetch --revision)"
        )
    segments = rest.split("/")
    kind = segments.pop(0) if segments[0] in ("models", "datasets") else "models"
    if segments and segments[0] == "spaces":
        raise _invalid(uri, "Spaces are neither models nor datasets")
    if len(segments) < 2 or not segments[0] or not segments[1]:
        raise _invalid(
            uri, "hf:// needs org/name: hf://org/name for a model, hf://datasets/org/name for a dataset"
        )
    org, name, *path = segments
    for part in (org, name):
        if not _HF_NAME.match(part) or "--" in part or ".." in part:
            raise _invalid(uri, f"{part!r} is not a valid Hub namespace or repository name: {_HF_NAME_RULE}")
    if any(s == "" for s in path[:-1]):
        raise _invalid(uri, "empty path segment ('//') in the path inside the repository")
    if any(s in (".", "..") for s in path):
        raise _invalid(uri, "'.' and '..' segments are not allowed in the path inside the repository")
    repo = f"{org}/{name}" if kind == "models" else f"datasets/{org}/{name}"
    return StorageUri("hf", repo, "/".join(path))


def _parse_https(uri: str, rest: str) -> StorageUri:
    """``https://host[:port]/path/to/file``: ``bucket`` is the host (and port), ``path`` the rest."""
    host, _, path = rest.partition("/")
    if "@" in host:
        shown = f"https://***@{host.rpartition('@')[2]}"
        raise _invalid(
            shown, "credentials do not belong in the URI; https:// sources are fetched anonymously"
        )
    try:
        parts = urlsplit(uri)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if not host or not parts.hostname or not port_ok:
        raise _invalid(uri, "the host (and optional port) is missing or not valid")
    if not path or path.endswith("/"):
        raise _invalid(uri, "an https:// source names one file, e.g. https://host/data/train.jsonl")
    segments = path.split("/")
    if any(s == "" for s in segments):
        raise _invalid(uri, "empty path segment ('//')")
    if any(unquote(s) in (".", "..") for s in segments):
        raise _invalid(uri, "'.' and '..' path segments are not allowed")
    return StorageUri("https", host.lower(), path)
