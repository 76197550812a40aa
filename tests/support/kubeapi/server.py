"""KubeApiServer: the emulated Kubernetes API server on https://127.0.0.1:PORT, in its own thread.

The server owns a thread with its own asyncio loop, so blocking clients
(kubectl subprocesses, httpx, the `kubernetes` client) and a kopf operator
running in the test's loop never share its loop. It serves TLS with a CA
and certificate made for this instance, and writes a kubeconfig with that
CA and a bearer token (any token is accepted; authorization is not
emulated). Start takes a few tens of milliseconds; stop closes every
connection, watch and task and joins the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import yaml

from support.kubeapi import tls
from support.kubeapi.apiserver import ApiServer
from support.kubeapi.client import KubeApiError, KubeClient
from support.kubeapi.gc import GarbageCollector
from support.kubeapi.handler import KubeHandler
from support.kubeapi.http import Router
from support.kubeapi.resources import Registry
from support.kubeapi.store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")

REPO = Path(__file__).resolve().parents[3]
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _cut_connections() -> None:
    """Closes every socket still open on this (the server's own) loop, and lets the close callbacks run.

    A TLS close waits for the client's close_notify, which an idle keep-alive client never sends, and a
    connection still in its handshake is known to no one but the loop: without this, such sockets would
    outlive the loop (ResourceWarnings, which the test suite turns into errors).
    """
    # The selector loop's own registry of its transports (no public API lists them).
    for transport in list(getattr(asyncio.get_running_loop(), "_transports", {}).values()):
        transport.abort()  # closes the socket in a callback, even for a transport already closing
    await asyncio.sleep(0.01)


class KubeApiServer:
    """One emulated API server. Use as a context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        workdir: Path,
        *,
        token: str | None = None,
        bookmark_interval: float = 10.0,
        history: int = 50_000,
    ) -> None:
        self.workdir = workdir
        self.history = history
        self.token = token or secrets.token_urlsafe(24)
        self.bookmark_interval = bookmark_interval
        self.host = "127.0.0.1"
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((self.host, 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"https://{self.host}:{self.port}"
        self._certs = tls.generate()
        self.ca_path = workdir / "ca.crt"
        self.kubeconfig = workdir / "kubeconfig"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.handler: KubeHandler | None = None
        self.api: ApiServer | None = None
        self._client: KubeClient | None = None
        self._context: ssl.SSLContext | None = None

    # --- lifecycle --------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> KubeApiServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._context = self._certs.server_context(self.workdir)
        self.kubeconfig.write_text(tls.kubeconfig(self.url, self._certs.ca_pem, self.token))
        self.kubeconfig.chmod(0o600)
        self._thread = threading.Thread(target=self._run, name=f"kube-api-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the emulated API server did not start within {timeout}s")
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            self._sock.close()
            raise RuntimeError("the emulated API server failed to start") from self._failure
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            raise RuntimeError("the emulated API server's thread did not stop within 30s")
        self._thread = None
        self._sock.close()
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported to start(); nothing else can see this thread's errors
            self._failure = e
            self._ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        stopping = asyncio.Event()
        registry = Registry.with_builtins()
        self.api = api = ApiServer(registry, Store(history=self.history))
        collector = GarbageCollector(api)
        router = Router(
            api,
            address=f"{self.host}:{self.port}",
            stopping=stopping,
            bookmark_interval=self.bookmark_interval,
        )
        self.handler = handler = KubeHandler(router=router)
        namespaces = registry.get("", "v1", "namespaces")
        assert namespaces is not None
        for name in INITIAL_NAMESPACES:
            api.create(namespaces, None, {"metadata": {"name": name}})
        async with handler:
            web_server = aiohttp.web.Server(handler, access_log=None)
            runner = aiohttp.web.ServerRunner(web_server, shutdown_timeout=5)
            await runner.setup()
            site = aiohttp.web.SockSite(runner, self._sock, ssl_context=self._context)
            await site.start()
            gc_task = asyncio.create_task(collector.run(), name="kube-api-gc")
            try:
                self._ready.set()
                await self._stop.wait()
            finally:
                stopping.set()
                api.store.notify()
                gc_task.cancel()
                await asyncio.gather(gc_task, return_exceptions=True)
                await runner.cleanup()
                await _cut_connections()

    # --- access -----------------------------------------------------------------

    @property
    def client(self) -> KubeClient:
        if self._client is None:
            self._client = KubeClient(self.url, self.ca_path, self.token)
        return self._client

    @property
    def kmock(self) -> KubeHandler:
        """The kmock handler: its requests for assertions (`list(server.kmock)`), `<<` for fault injection."""
        assert self.handler is not None, "the server is not started"
        return self.handler

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of server bugs (each answered with 500); a test session expects none."""
        return list(self.handler.internal_errors) if self.handler else []

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Runs `fn` on the server's loop (for direct looks at the store) and returns its result."""
        assert self._loop is not None

        async def run() -> T:
            return fn()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout)

    # --- CRDs -------------------------------------------------------------------

    def load_crds(
        self, paths: Iterable[Path | str] | None = None, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Creates (or replaces) the CRDs in these YAML files and waits until each is Established.

        The default is every `crds/*.yaml` of the repository.
        """
        files = [Path(p) for p in paths] if paths is not None else sorted((REPO / "crds").glob("*.yaml"))
        if not files:
            raise FileNotFoundError(f"no CRD files to load (looked in {REPO / 'crds'})")
        names = []
        for path in files:
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ValueError(
                        f"{path}: expected kind CustomResourceDefinition, found {doc.get('kind')!r}"
                    )
                names.append(self._apply_crd(doc))
        return [self._wait_established(name, timeout) for name in names]

    def _apply_crd(self, crd: dict[str, Any]) -> str:
        name = str(crd["metadata"]["name"])
        version = "apiextensions.k8s.io/v1"
        try:
            current = self.client.get(version, "customresourcedefinitions", name)
        except KubeApiError as e:
            if e.status != 404:
                raise
            self.client.create(crd)
        else:
            updated = {
                **crd,
                "metadata": {**crd["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]},
            }
            self.client.replace(updated)
        return name

    def _wait_established(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            crd = self.client.get("apiextensions.k8s.io/v1", "customresourcedefinitions", name)
            conditions = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                return crd
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {name} not Established within {timeout}s: conditions {conditions}")
            time.sleep(0.02)
