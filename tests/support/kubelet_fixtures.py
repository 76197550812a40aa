"""Fixtures: the kubelet (job controller + pod runner) and the operator in the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from support.kubelet import Kubelet


@pytest.fixture
def kubelet(kube_api, tmp_path) -> Iterator[Kubelet]:
    """Runs every Job in the emulated API as local processes."""
    running = Kubelet(kube_api, tmp_path / "kubelet").start()
    yield running
    running.stop()
    assert not running.errors, f"the kubelet fixture hit errors: {running.errors!r}"


class OperatorThread:
    """The real Tuneforge operator (kopf), in its own thread and event loop."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="tuneforge-operator", daemon=True)

    def _main(self) -> None:
        from tuneforge.operator.main import run

        async def operate() -> None:
            try:
                await run(stop_flag=self.stop_flag, ready_flag=self.ready)
            finally:
                # Let kopf's TLS connections close before the loop does.
                await asyncio.sleep(0.2)

        try:
            asyncio.run(operate())
        except BaseException as err:  # reported by the fixture
            self.error = err

    def start(self) -> OperatorThread:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError(f"the operator did not become ready: {self.error!r}")
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(30)


@pytest.fixture
def operator(kube_api, monkeypatch) -> Iterator[OperatorThread]:
    """The operator, logged in to the emulated API through its kubeconfig."""
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    running = OperatorThread().start()
    yield running
    running.stop()
    assert running.error is None or isinstance(running.error, asyncio.CancelledError), running.error
