"""The real kopf 1.45 operator runs unchanged against the emulation: create, update after a watch
restart (resumed from its resourceVersion), and delete with its finalizer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import kopf
import pytest
import pytest_asyncio
from support.kubeapi import KubeApiServer
from support.waiting import async_wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

WIDGETS = "test.tuneforge.io/v1"
WIDGETS_CRD = Path(__file__).parent / "data" / "widgets-crd.yaml"
PREFIX = "test.tuneforge.io"


def _registry(seen: list[tuple[str, str]]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{PREFIX}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 1  # the server ends each watch after a second: kopf must resume

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.create("test.tuneforge.io", "v1", "widgets", registry=registry)
    def created(name: str, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        seen.append(("create", name))
        patch.status["message"] = f"made at size {body['spec']['size']}"
        kopf.warn(body, reason="Made", message="the widget was made")

    @kopf.on.update("test.tuneforge.io", "v1", "widgets", field="spec.size", registry=registry)
    def resized(name: str, new: Any, patch: kopf.Patch, **_: Any) -> None:
        seen.append(("update", name))
        patch.status["message"] = f"resized to {new}"

    @kopf.on.delete("test.tuneforge.io", "v1", "widgets", registry=registry)
    def deleted(name: str, **_: Any) -> None:
        seen.append(("delete", name))

    return registry


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiServer]:
    with pytest.MonkeyPatch.context() as env, KubeApiServer(tmp_path_factory.mktemp("kopf-api")) as api:
        env.setenv("KUBECONFIG", str(api.kubeconfig))  # kopf.login_with_kubeconfig() reads it
        api.load_crds([WIDGETS_CRD])
        yield api
    assert not api.internal_errors, api.internal_errors


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _operator(server: KubeApiServer) -> tuple[asyncio.Task[None], asyncio.Event, list[tuple[str, str]]]:
    handled: list[tuple[str, str]] = []
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=_registry(handled),
            standalone=True,
            namespaces=["default"],
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    await asyncio.wait_for(ready.wait(), timeout=10)
    return task, stop, handled


@pytest.fixture(scope="module")
def seen(
    _operator: tuple[asyncio.Task[None], asyncio.Event, list[tuple[str, str]]],
) -> Iterator[list[tuple[str, str]]]:
    """The operator's handled events. It stops in milliseconds: kopf waits 5 s for every task created after
    it started (an async fixture's teardown is one), so the stop is awaited from a sync teardown instead."""
    task, stop, handled = _operator
    yield handled
    stop.set()
    loop = task.get_loop()
    loop.run_until_complete(task)  # the task itself: wrapping it would make a new, "hung" task
    loop.run_until_complete(asyncio.sleep(0.2))  # kopf's TLS connections finish closing before the loop does


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Blocking client calls run off the loop: the operator lives on it."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_create_adds_the_finalizer_patches_status_and_posts_an_event(server, seen):
    client = server.client
    await _call(
        client.create,
        {"apiVersion": WIDGETS, "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 2}},
    )
    await async_wait_for(
        lambda: ("create", "w1") in seen, timeout=10, message="kopf did not handle the creation"
    )

    async def handled() -> dict[str, Any] | None:
        obj = await _call(client.get, WIDGETS, "widgets", "w1")
        return obj if obj.get("status", {}).get("message") == "made at size 2" else None

    obj = await async_wait_for(handled, timeout=10, message="kopf's status patch did not land")
    assert obj["metadata"]["finalizers"] == [f"{PREFIX}/finalizer"]

    async def event() -> list[dict[str, Any]]:
        events = await _call(client.list, "v1", "events", "default", field_selector="involvedObject.name=w1")
        return [e for e in events if e["reason"] == "Made"]

    (posted,) = await async_wait_for(event, timeout=10, message="kopf's event was not posted")
    assert posted["involvedObject"]["kind"] == "Widget" and posted["type"] == "Warning"


async def test_updates_are_seen_after_watch_restarts(server, seen):
    def resumed_watches() -> list[kmock.Request]:
        watches = server.kmock[kmock.action.WATCH, kmock.resource("test.tuneforge.io", "v1", "widgets")]
        return [r for r in watches if r.params.get("resourceVersion")]

    await async_wait_for(
        lambda: len(resumed_watches()) >= 2,
        timeout=10,
        message="kopf did not restart its watch from a resourceVersion",
    )
    await _call(server.client.patch, WIDGETS, "widgets", "w1", {"spec": {"size": 7}})
    await async_wait_for(lambda: ("update", "w1") in seen, timeout=10, message="kopf missed the update")

    async def status() -> bool:
        obj = await _call(server.client.get, WIDGETS, "widgets", "w1")
        return bool(obj["status"]["message"] == "resized to 7")

    await async_wait_for(status, timeout=10, message="the update handler's status patch did not land")


async def test_delete_runs_the_handler_and_releases_the_finalizer(server, seen):
    await _call(server.client.delete, WIDGETS, "widgets", "w1")

    async def gone() -> bool:
        return not await _call(server.client.exists, WIDGETS, "widgets", "w1")

    await async_wait_for(gone, timeout=10, message="the widget was never released by kopf")
    assert ("delete", "w1") in seen
