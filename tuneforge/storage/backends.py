"""fsspec filesystems for each scheme, configured only from the environment.

The Job gives a container its storage settings as environment variables
(docs/architecture.md, "Anatomy of a training Job"); nothing here reads a
config file of ours. Settings are passed to the filesystem explicitly, so
fsspec's instance cache (keyed by constructor arguments) hands out a new
instance when the environment changes within one process.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from fsspec import AbstractFileSystem

from tuneforge.storage.errors import StorageError
from tuneforge.storage.uri import StorageUri

# A wrong endpoint should fail in seconds: bound botocore's connect timeout
# and retries (its defaults add up to about a minute).
S3_CLIENT_CONFIG: Final[Mapping[str, Any]] = {
    "connect_timeout": 5,
    "read_timeout": 60,
    "retries": {"max_attempts": 2, "mode": "standard"},
}
# gcsfs retries connection errors six times with exponential backoff (~30 s)
# and offers no knob for it, so one TCP connect is tried first.
GCS_PROBE_TIMEOUT_S: Final = 3.0
_GCSFS_FLAG: Final = "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"
HF_DEFAULT_ENDPOINT: Final = "https://huggingface.co"


@dataclass(frozen=True)
class Endpoint:
    """Where a scheme's requests go, for error messages and the reachability probe."""

    scheme: str
    url: str | None  # None: the provider's public service

    def describe(self) -> str:
        if self.scheme == "file":
            return "the local filesystem"
        if self.scheme == "hf":
            return f"the Hugging Face Hub at {self.url}"
        if self.scheme == "https":
            return "the web server"
        kind = "S3" if self.scheme == "s3" else "GCS"
        return f"the {kind} endpoint {self.url}" if self.url else f"the public {kind} service"


def _env(name: str, env: Mapping[str, str]) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def s3_endpoint(env: Mapping[str, str] = os.environ) -> str | None:
    return _env("AWS_ENDPOINT_URL_S3", env) or _env("AWS_ENDPOINT_URL", env)


def gcs_emulator(env: Mapping[str, str] = os.environ) -> str | None:
    host = _env("STORAGE_EMULATOR_HOST", env)
    if host is None or host == "default":
        return None
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def hub_endpoint(env: Mapping[str, str] = os.environ) -> str:
    """The Hugging Face Hub's base URL: ``HF_ENDPOINT`` (a mirror, or a test double), else the public Hub.

    Read at call time and handed to huggingface_hub explicitly: the library
    reads ``HF_ENDPOINT`` once, when it is first imported.
    """
    return (_env("HF_ENDPOINT", env) or HF_DEFAULT_ENDPOINT).rstrip("/")


def endpoint_for(scheme: str, env: Mapping[str, str] = os.environ) -> Endpoint:
    if scheme == "hf":
        return Endpoint("hf", hub_endpoint(env))
    if scheme == "s3":
        return Endpoint("s3", s3_endpoint(env))
    if scheme == "gs":
        return Endpoint("gs", gcs_emulator(env))
    return Endpoint(scheme, None)


def s3_options(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """s3fs constructor arguments from AWS_* variables (unset ones fall back to botocore's chain)."""
    region = _env("AWS_REGION", env) or _env("AWS_DEFAULT_REGION", env)
    options: dict[str, Any] = {
        "endpoint_url": s3_endpoint(env),
        "key": _env("AWS_ACCESS_KEY_ID", env),
        "secret": _env("AWS_SECRET_ACCESS_KEY", env),
        "token": _env("AWS_SESSION_TOKEN", env),
        "client_kwargs": {"region_name": region} if region else {},
        "config_kwargs": {**S3_CLIENT_CONFIG, "retries": dict(S3_CLIENT_CONFIG["retries"])},
        "use_listings_cache": False,
    }
    return options


def gcs_options(env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """gcsfs constructor arguments: anonymous against an emulator, else a key file or ADC."""
    emulator = gcs_emulator(env)
    options: dict[str, Any] = {"use_listings_cache": False}
    project = _env("GOOGLE_CLOUD_PROJECT", env)
    if project:  # passing None makes gcsfs warn; it only matters for creating buckets
        options["project"] = project
    if emulator:
        options.update(endpoint_url=emulator, token="anon")
    else:
        # A key file from the Job's secret volume, else Application Default
        # Credentials (Workload Identity through the metadata server).
        options["token"] = _env("GOOGLE_APPLICATION_CREDENTIALS", env) or "google_default"
    return options


def filesystem(uri: StorageUri) -> AbstractFileSystem:
    """The fsspec filesystem for ``uri``'s scheme, set up from ``os.environ``."""
    if uri.scheme == "file":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(auto_mkdir=True)
    if uri.scheme == "s3":
        import s3fs

        return s3fs.S3FileSystem(**s3_options())
    if uri.scheme == "gs":
        return _gcs_filesystem()
    raise StorageError("NotSupported", f"no filesystem for scheme {uri.scheme!r}")


def _gcs_filesystem() -> AbstractFileSystem:
    emulator = gcs_emulator()
    if emulator:
        # gcsfs reads this flag once, at import; left on, its bucket-type
        # probes fail against an emulator and warn dozens of times. A value the
        # user set is kept.
        os.environ.setdefault(_GCSFS_FLAG, "false")
    options = gcs_options()
    key_file = options["token"]
    if key_file not in ("anon", "google_default") and not os.path.isfile(key_file):
        # gcsfs would take a missing path for a raw access token and fail later, obscurely.
        raise StorageError(
            "AccessDenied",
            f"GOOGLE_APPLICATION_CREDENTIALS points at {key_file}, which is not a file; "
            "check that the Secret named by spec.storage.gcs.credentialsSecret has the key key.json",
        )
    _probe(emulator or "https://storage.googleapis.com")
    import gcsfs.core

    if emulator:
        # The plain class, even if gcsfs was imported earlier with the flag on.
        return gcsfs.core.GCSFileSystem(**options)
    return gcsfs.GCSFileSystem(**options)


def _probe(url: str) -> None:
    """One TCP connect with a short timeout; OSError if nothing answers."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname or "", port), timeout=GCS_PROBE_TIMEOUT_S):
        pass
