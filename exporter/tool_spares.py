"""Spare processes for the exporter's Python tools, started before they are needed (``tool_host``).

llama.cpp's converters spend about 4 s importing torch and transformers before
they read a byte; that is most of an f16 GGUF conversion of a 1 GB model. The
export pipeline knows at its start which tools it will run, so it starts a
spare for each (``prestart``) while it fetches the sources and merges, and
``gguf_process.run_tool`` hands the tool's arguments to a waiting spare
(``claim``) instead of starting a cold process. A spare is used once. Until
it is claimed a spare holds its imports (~0.4 GB) and no file; spares left
at exit are stopped with their process groups.

A spare is only used for the same tool with the same environment as it was
started with, so a tool never runs with an environment it was not given.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tuneforge.exporter.tool_host import EXITED, MODULE_PREFIX, READY


@dataclass(frozen=True)
class _Spare:
    target: str
    env: dict[str, str]
    process: subprocess.Popen[str]


_spares: list[_Spare] = []
_lock = threading.Lock()
_stopped_at_exit: list[bool] = []  # whether discard_all is registered to run at exit


def target_of(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(the tool_host TARGET, its arguments) of ``[python, script, ...]`` or ``[python, -m, module, ...]``."""
    if len(argv) < 2 or argv[0] != sys.executable:
        return None
    if argv[1] == "-m" and len(argv) >= 3:
        return MODULE_PREFIX + argv[2], list(argv[3:])
    if argv[1].endswith(".py"):
        return argv[1], list(argv[2:])
    return None


def prestart(argv: Sequence[str], env: dict[str, str], preload: Sequence[str] = ()) -> bool:
    """Starts a spare for the tool ``argv`` names (its arguments are ignored) unless one is waiting.

    ``env`` is the tool's whole environment. Returns whether a spare is now waiting.
    """
    found = target_of(argv)
    if found is None:
        return False
    target = found[0]
    with _lock:
        _spares[:] = [spare for spare in _spares if spare.process.poll() is None]
        if any(spare.target == target and spare.env == env for spare in _spares):
            return True
        # One spare per tool: one started with an environment that has changed since is of no use.
        for stale in [spare for spare in _spares if spare.target == target]:
            _spares.remove(stale)
            _stop(stale.process)
        if not _stopped_at_exit:
            atexit.register(discard_all)
            _stopped_at_exit.append(True)
        host = [sys.executable, "-m", "tuneforge.exporter.tool_host", target, *preload]
        _spares.append(_Spare(target, dict(env), start_process(host, env, stdin=subprocess.PIPE)))
    return True


def start_process(command: Sequence[str], env: dict[str, str], *, stdin: int) -> subprocess.Popen[str]:
    """A tool's process: stdout and stderr read as text, and a session of its own, so that a
    deadline stops its whole process group (``gguf_process``)."""
    return subprocess.Popen(
        list(command),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
    )


def claim(argv: Sequence[str], env: dict[str, str], memory_limit: int | None) -> subprocess.Popen[str] | None:
    """A waiting spare for ``argv``'s tool, already told to run it; None when there is none."""
    found = target_of(argv)
    if found is None:
        return None
    target, arguments = found
    while True:
        with _lock:
            spare = next(
                (s for s in _spares if s.target == target and s.env == env and s.process.poll() is None),
                None,
            )
            if spare is None:
                return None
            _spares.remove(spare)
        request = json.dumps({"argv": arguments, "memoryLimit": memory_limit})
        try:
            assert spare.process.stdin is not None
            spare.process.stdin.write(request + "\n")
            spare.process.stdin.close()
            spare.process.stdin = None  # as if started without one: communicate() must not flush it
        except OSError:  # it ended after all: try the next one
            _stop(spare.process)
            continue
        return spare.process


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str, int]:
    """A claimed spare's stdout, stderr and exit status, once its tool is done.

    Read until the host closes its output after writing the status (``tool_host``); the process is
    then reaped in the background, its teardown off the caller's clock. A host that died without
    writing it (a signal, the memory cap) is waited for, as ``communicate`` would. Raises
    ``subprocess.TimeoutExpired`` after ``timeout`` seconds.
    """
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + timeout
    streams = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(process.args, timeout)
            for key, _ in selector.select(left):
                data = os.read(key.fd, 1 << 16)
                if data:
                    streams[key.fd] += data
                else:
                    selector.unregister(key.fd)
    # The encoding the streams would have been read with (Popen's text mode: the locale's).
    encoding = getattr(process.stdout, "encoding", None) or "utf-8"
    stdout, stderr = (_text(bytes(streams[f.fileno()]), encoding) for f in (process.stdout, process.stderr))
    process.stdout.close()
    process.stderr.close()
    head, marker, tail = stdout.rpartition(EXITED)
    status = re.fullmatch(r" (\d+)\n", tail) if marker else None
    if status is None:
        return stdout, stderr, process.wait(max(0.0, deadline - time.monotonic()))
    threading.Thread(target=process.wait, name="spare-reaper", daemon=True).start()
    return head, stderr, int(status.group(1))


def _text(data: bytes, encoding: str) -> str:
    """Bytes as ``Popen(text=True, errors="replace")`` gives them (universal newlines)."""
    return data.decode(encoding, errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def without_ready(stdout: str) -> str:
    """A spare's stdout as the tool's: without the line the host printed before it (if still there)."""
    return stdout.removeprefix(READY + "\n")


def wait_ready() -> bool:
    """Blocks until every spare has done its imports (benchmarks: to time the tool alone)."""
    with _lock:
        waiting = list(_spares)
    for spare in waiting:
        assert spare.process.stdout is not None
        # Nothing follows READY before the spare is claimed, so no output of the tool is read here.
        if spare.process.stdout.readline().strip() != READY:
            return False
    return True


def waiting() -> list[str]:
    """The targets (script path or ``-m:module``) of the spares waiting to be claimed."""
    with _lock:
        return [spare.target for spare in _spares if spare.process.poll() is None]


def discard_all() -> None:
    """Stops every spare (at exit, and for tests)."""
    with _lock:
        spares, _spares[:] = list(_spares), []
    for spare in spares:
        _stop(spare.process)


def _stop(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
