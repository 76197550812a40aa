"""Fixtures: real object stores on 127.0.0.1 and a way to point in-process code at them.

- ``s3_server`` (session): SeaweedFS; ``.endpoint``, ``.access_key``, ``.secret_key``,
  ``.region``, ``.env`` (AWS_* variables for a subprocess or a Secret),
  ``.make_bucket(name=None)``, and ``put_object`` / ``get_object`` / ``list_keys``
  through a plain botocore client (independent of ``tuneforge.storage``).
- ``gcs_server`` (session): gcp-storage-emulator; ``.endpoint``, ``.env``
  (STORAGE_EMULATOR_HOST, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT, GOOGLE_CLOUD_PROJECT),
  ``.make_bucket(name=None)`` and the same object helpers over plain HTTP.
- ``hub_server`` (session): the Hugging Face Hub test double (``support.hubserver``);
  ``.endpoint``, ``.env`` (HF_ENDPOINT, HF_HUB_DISABLE_XET, HF_HOME, SSL_CERT_FILE),
  ``.create_repo(repo_id, private=, gated=, repo_type=)``, ``.seed(repo_id, folder_or_dict,
  revision=, tag=)``, ``.add_token(token, repos=, write=)``, ``.files(repo_id, revision)``,
  ``.downloads(repo_id)``, ``.hold(repo_id, path)``, ``.new_repo_id()``.
- ``hub_env`` (function): ``hub_server.env`` in ``os.environ`` for this test, with its own
  HF_HOME and no HF_TOKEN; returns the variables (for subprocesses).
- ``storage_env`` (function): ``storage_env(server.env)`` puts the variables into
  ``os.environ`` for in-process calls; they are restored when the test ends.
  ``applied_env(env)`` is the same as a context manager, for code without fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.gcsserver import GcsServer, start_gcs_server
from support.hubserver import HubServer
from support.s3server import S3Server, start_s3_server

__all__ = [
    "GcsServer",
    "HubServer",
    "S3Server",
    "applied_env",
    "gcs_server",
    "hub_env",
    "hub_server",
    "s3_server",
    "storage_env",
]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    server = start_gcs_server(tmp_path_factory.mktemp("gcsserver"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hubserver")) as server:
        yield server


@pytest.fixture
def hub_env(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    env = {**hub_server.env, "HF_HOME": str(tmp_path / "hf-home")}
    monkeypatch.delenv("HF_TOKEN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def storage_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Mapping[str, str]], None]:
    def apply(env: Mapping[str, str]) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


@contextmanager
def applied_env(env: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
