"""Writing one tensor while the next is read and merged: a worker thread and two alternating buffers.

File writes and torch operations both release the GIL, so the output file
(whose writes block once the kernel throttles dirty pages) fills while the
main thread computes. Order is kept (one worker, first in first out); a
read buffer is handed out again only once the tensor read into it has been
written, so memory stays at two tensors' worth.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any


class WriteBehind:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tuneforge-write")
        self._buffers = [bytearray(), bytearray()]
        self._pending: list[Future[Any] | None] = [None, None]
        self._turn = 0
        self._futures: list[Future[Any]] = []

    def buffer(self, nbytes: int) -> bytearray:
        """A read buffer of ``nbytes`` or more whose last tensor is written; the next ``submit`` owns it."""
        self._turn ^= 1
        pending = self._pending[self._turn]
        if pending is not None:
            pending.result()  # also raises what went wrong writing it
        if len(self._buffers[self._turn]) < nbytes:
            self._buffers[self._turn] = bytearray()  # freed before the bigger one is made
            self._buffers[self._turn] = bytearray(nbytes)
        return self._buffers[self._turn]

    def submit(self, write: Callable[..., None], *args: Any, owns_buffer: bool = False) -> None:
        """Runs ``write(*args)`` on the worker, after everything submitted before."""
        self._raise_failed()
        future = self._pool.submit(write, *args)
        self._futures.append(future)
        if owns_buffer:
            self._pending[self._turn] = future

    def _raise_failed(self) -> None:
        done = [f for f in self._futures if f.done()]
        self._futures = [f for f in self._futures if not f.done()]
        for future in done:
            future.result()

    def finish(self) -> None:
        """Waits for every write; raises the first failure."""
        try:
            for future in self._futures:
                future.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish()
        else:
            self._pool.shutdown(wait=True, cancel_futures=True)
