"""One behaviour, three stores: the ``store`` fixture runs a test against file://, s3:// and gs://."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from support.storage_procs import pick_ports


@dataclass
class Store:
    scheme: str
    root: str
    """URI of a fresh, empty folder in this store."""
    env: dict[str, str]
    """What a subprocess needs to reach the store."""
    put: Callable[[str, bytes], None]
    """Writes ``root/<rel>`` without going through tuneforge.storage (to set up or tamper)."""
    keys: Callable[[], list[str]]
    """Every key under ``root``, relative, sorted."""

    def uri(self, rel: str) -> str:
        return f"{self.root}/{rel}"


def _file_store(tmp_path: Path) -> Store:
    base = tmp_path / "store"
    base.mkdir()

    def put(rel: str, data: bytes) -> None:
        target = base / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def keys() -> list[str]:
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    return Store("file", f"file://{base}", {}, put, keys)


class ObjectServer(Protocol):
    """What S3Server and GcsServer both offer."""

    @property
    def env(self) -> dict[str, str]: ...
    def make_bucket(self, name: str | None = None) -> str: ...
    def put_object(self, bucket: str, key: str, data: bytes) -> None: ...
    def list_keys(self, bucket: str, prefix: str = "") -> list[str]: ...


def _bucket_store(scheme: str, server: ObjectServer, prefix: str = "data") -> Store:
    bucket = server.make_bucket()

    def put(rel: str, data: bytes) -> None:
        server.put_object(bucket, f"{prefix}/{rel}", data)

    def keys() -> list[str]:
        return sorted(k[len(prefix) + 1 :] for k in server.list_keys(bucket, prefix + "/"))

    return Store(scheme, f"{scheme}://{bucket}/{prefix}", dict(server.env), put, keys)


@pytest.fixture(params=["file", "s3", "gs"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, storage_env: Callable[[Mapping[str, str]], None]
) -> Store:
    if request.param == "file":
        return _file_store(tmp_path)
    server = request.getfixturevalue("s3_server" if request.param == "s3" else "gcs_server")
    storage_env(server.env)
    return _bucket_store(request.param, server)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    return pick_ports(1)[0]


@pytest.fixture
def subprocess_env() -> Callable[..., dict[str, str]]:
    """os.environ plus the given variables, for running ``tuneforge`` as a child."""

    def build(*envs: Mapping[str, str], **extra: str) -> dict[str, str]:
        merged = dict(os.environ)
        for env in envs:
            merged.update(env)
        merged.update(extra)
        return merged

    return build
