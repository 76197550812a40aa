"""A Python tool's process started ahead of time: its imports done, waiting to be told what to run.

    python -m tuneforge.exporter.tool_host TARGET [PRELOAD ...]

TARGET is a script path (``.../convert_hf_to_gguf.py``) or ``-m:MODULE``. The
host imports what TARGET imports (a script's top-level import statements, read
from its source: none of its code runs before it is asked to; a module is
imported) and the PRELOADs (module names; ``path:DIR`` puts DIR on
``sys.path`` for the modules after it), prints ``READY`` on stdout, then
reads one JSON line on stdin::

    {"argv": ["ARG", ...], "memoryLimit": BYTES or null}

and becomes the tool: stdin is /dev/null, RLIMIT_AS is set, ``sys.argv`` is
the tool's and TARGET runs as ``__main__``. Its exit status, stdout and
stderr are then exactly the tool's, and when the tool is done the host
writes ``EXITED`` and the status on stdout and closes its output before it
exits: the exporter has the whole run then (``tool_spares.finish``), without
waiting for the process's teardown (12 ms of a ``--vocab-only`` run's 60 with
torch loaded). llama.cpp's converter spends 4 of the
4.2 s of a ``--vocab-only`` run importing torch and transformers; a host
started while the exporter fetches and merges has them ready.

An import that fails while preloading is ignored here: the tool imports it
again when it runs and fails as it would have without a host.
"""

from __future__ import annotations

import ast
import atexit
import importlib
import json
import os
import resource
import runpy
import sys
from pathlib import Path
from typing import Final, NoReturn

READY: Final = "READY"
EXITED: Final = "\0TUNEFORGE-TOOL-EXITED"
"""Written on stdout, then the exit status and a newline, once the tool's output is complete."""
MODULE_PREFIX: Final = "-m:"
PATH_PREFIX: Final = "path:"


def main() -> None:
    target, preload = sys.argv[1], sys.argv[2:]
    _preload(target, preload)
    print(READY, flush=True)
    request = json.loads(sys.stdin.readline() or "null")
    if not isinstance(request, dict):
        sys.exit("tool_host: no request on stdin")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    limit = request.get("memoryLimit")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    sys.argv = [target, *request["argv"]]  # run_module replaces the first with the module's path
    _exit_as_python_would(target)


def _exit_as_python_would(target: str) -> NoReturn:
    """Runs TARGET as ``__main__``, then ends the process with the status Python would give it.

    Without tearing down the interpreter: with torch and transformers loaded that takes a second,
    longer than the converter's whole ``--vocab-only`` run. Exit handlers still run and the
    standard streams are flushed; the tools close the files they write.
    """
    try:
        if target.startswith(MODULE_PREFIX):
            name = target.removeprefix(MODULE_PREFIX)
            # Preloaded as a module; run again as __main__ (its imports stay loaded). Without this,
            # runpy warns on stderr that it was "found in sys.modules", which is then in the tool's.
            sys.modules.pop(name, None)
            runpy.run_module(name, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
        status = 0
    except SystemExit as stop:
        status = _status(stop.code)
    except BaseException:  # noqa: BLE001 - reported as the interpreter reports an uncaught exception
        sys.excepthook(*sys.exc_info())
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    _announce(status)
    os._exit(status)


def _announce(status: int) -> None:
    """Tells the exporter the tool's status and closes the output: the run is complete."""
    try:
        os.write(1, f"{EXITED} {status}\n".encode())
    except OSError:
        pass  # stdout is gone: the exporter reads the status from the exit instead
    for fd in (1, 2):
        try:
            os.close(fd)
        except OSError:
            pass


def _status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _preload(target: str, modules: list[str]) -> None:
    if not target.startswith(MODULE_PREFIX):
        # As ``python SCRIPT`` has it: the script's folder first on the path, not the current one.
        sys.path[0] = str(Path(target).resolve().parent)
    names = modules if target.startswith(MODULE_PREFIX) else [*modules, *script_imports(Path(target))]
    if target.startswith(MODULE_PREFIX):
        names = [target.removeprefix(MODULE_PREFIX), *names]
    for name in names:
        if name.startswith(PATH_PREFIX):
            sys.path.insert(0, name.removeprefix(PATH_PREFIX))
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the tool meets the same failure when it runs, and reports it
            continue


def script_imports(script: Path) -> list[str]:
    """The modules a script imports at its top level (also inside top-level ``if`` and ``try``)."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), str(script))
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    statements = list(tree.body)
    while statements:
        node = statements.pop(0)
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, (ast.If, ast.Try)):
            statements += [*node.body, *node.orelse]
    return list(dict.fromkeys(names))


if __name__ == "__main__":
    main()
