"""Polling until a condition holds, with a failure message that shows the last value seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def _timeout_error(message: str, timeout: float, last: object, error: BaseException | None) -> AssertionError:
    text = f"{message} (not within {timeout}s; last value: {last!r}"
    text += f"; last error: {error!r})" if error is not None else ")"
    return AssertionError(text)


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> T:
    """Calls `predicate` until it returns something truthy, and returns that.

    Exceptions from the predicate count as "not yet" (the last one is reported on timeout), so
    `wait_for(lambda: client.get(...))` waits for an object to appear.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            last = predicate()
            error = None
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - reported on timeout
            error = e
        if time.monotonic() >= deadline:
            raise _timeout_error(message, timeout, last, error)
        time.sleep(interval)


@overload
async def async_wait_for(
    predicate: Callable[[], Awaitable[T]], timeout: float = ..., interval: float = ..., message: str = ...
) -> T: ...


@overload
async def async_wait_for(
    predicate: Callable[[], T], timeout: float = ..., interval: float = ..., message: str = ...
) -> T: ...


async def async_wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition not met",
) -> Any:
    """The async twin of `wait_for`: the predicate may be sync or async; the loop keeps running meanwhile."""
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if isinstance(value, Awaitable):
                value = await value
            last = value
            error = None
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported on timeout
            error = e
        if time.monotonic() >= deadline:
            raise _timeout_error(message, timeout, last, error)
        await asyncio.sleep(interval)
