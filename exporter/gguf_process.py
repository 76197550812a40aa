"""Runs one llama.cpp tool as a child process with a deadline.

Converters and the quantizer run in their own process so that their memory
(and a crash in native code) stays out of the exporter, and so that a
timeout can stop them cleanly: the child leads its own process group, which
is terminated, then killed, as a whole. Secrets in the environment are not
passed on: the tools read local files only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tuneforge.exporter import tool_spares
from tuneforge.exporter.gguf_errors import GgufError, classify

KILL_GRACE_S: Final = 5.0
"""How long a timed-out tool gets between SIGTERM and SIGKILL."""

# Sets RLIMIT_AS, then becomes the tool (a trampoline rather than preexec_fn,
# which is unsafe when the exporter has threads).
_LIMIT_THEN_EXEC: Final = (
    "import os, resource, sys; limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_AS, (limit, limit)); os.execv(sys.argv[2], sys.argv[2:])"
)

_WITHHELD_ENV: Final = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "WANDB_API_KEY",
    }
)


@dataclass(frozen=True)
class ToolRun:
    """A tool run that succeeded."""

    stdout: str
    stderr: str
    seconds: float
    started_ahead: bool = False
    """Whether it ran in a process started ahead (``prestart_tool``)."""


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a tool: ours without credentials, offline for the Hub, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if key not in _WITHHELD_ENV}
    # Local folders only: a converter must never reach for the Hub to fill a gap.
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def run_tool(
    argv: Sequence[str],
    *,
    step: str,
    timeout: float,
    version: str,
    memory_limit: int | None = None,
    env: dict[str, str] | None = None,
) -> ToolRun:
    """Runs ``argv``; raises GgufError (ConversionTimeout, or what ``classify`` reads from stderr) on failure.

    ``memory_limit`` caps the child's address space in bytes (RLIMIT_AS), so a
    tool that needs more fails with MemoryError in its own process and the
    exporter lives to report OutOfMemory instead of being OOM-killed with it.
    """
    started = time.monotonic()
    full_env = tool_env(env)
    spare = tool_spares.claim(argv, full_env, memory_limit)
    process = spare or _start(argv, full_env, memory_limit)
    try:
        if spare is not None:
            stdout, stderr, status = tool_spares.finish(process, timeout)
        else:
            stdout, stderr = process.communicate(timeout=timeout)
            status = process.returncode
    except subprocess.TimeoutExpired:
        _stop(process)
        raise GgufError(
            "ConversionTimeout",
            f"{step} did not finish within {timeout:g} s and was stopped: raise the ModelExport's "
            "spec.timeoutSeconds, or give the export pod more CPU (spec.resources.cpu).",
        ) from None
    except BaseException:
        _stop(process)
        raise
    if status != 0:
        raise classify(step, status, stderr, version=version)
    seconds = time.monotonic() - started
    return ToolRun(tool_spares.without_ready(stdout), stderr, seconds, started_ahead=spare is not None)


def prestart_tool(
    argv: Sequence[str], *, preload: Sequence[str] = (), env: dict[str, str] | None = None
) -> bool:
    """Starts a spare process for the Python tool ``argv`` names, to be claimed by ``run_tool``.

    Only the tool (``[python, script.py]`` or ``[python, -m, module]``) counts, not its arguments.
    ``preload``: more modules for it to import in advance. Returns whether a spare is waiting.
    """
    return tool_spares.prestart(argv, tool_env(env), preload)


def _start(argv: Sequence[str], env: dict[str, str], memory_limit: int | None) -> subprocess.Popen[str]:
    command = list(argv)
    if memory_limit:
        command = [sys.executable, "-c", _LIMIT_THEN_EXEC, str(memory_limit), *command]
    return tool_spares.start_process(command, env, stdin=subprocess.DEVNULL)


def _stop(process: subprocess.Popen[str]) -> None:
    """Terminates the tool's whole process group, then kills what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
