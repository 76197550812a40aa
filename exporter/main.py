"""``tuneforge export``: the export Job's container.

    tuneforge export --spec /etc/tuneforge/export.yaml --adapter-uri URI --base-model-uri URI
                     [--base-revision REV] --workdir /workspace/export

1. Reads the ModelExport and works out the artifact's identity (adapter
   content, base model version, format, quantization, llama.cpp version).
2. Asks every destination whether it already holds that artifact; those
   that do are reported as reused.
3. Builds the artifact once for the others (fetch, merge, GGUF, verify,
   zip) and publishes it to each of them, committing only complete
   artifacts.
4. Reports ``status.artifacts`` (one entry per destination) and ends with a
   termination message and an exit code from ``tuneforge.exitcodes``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from tuneforge import exitcodes
from tuneforge.api.conditions import SUCCEEDED_REASON
from tuneforge.exporter.errors import ExportError, OutOfMemory
from tuneforge.exporter.logs import LogSetup
from tuneforge.exporter.outcome import Outcome, fit_artifacts
from tuneforge.termination import write_termination_message

if TYPE_CHECKING:
    from tuneforge.exporter.export import Export

log = logging.getLogger("tuneforge.exporter")

LOG_FILE = "export.log"


class Terminated(BaseException):
    """SIGTERM arrived: preemption, eviction or deletion of the pod.

    A BaseException, so that no library's ``except Exception`` (the storage
    layer's error translation, a retry loop) mistakes it for a failure of its own.
    """


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # A wrong command line is the operator's bug: leave a termination message saying so.
        write_termination_message("InvalidArguments", f"{self.prog}: {message}")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tuneforge export",
        description="Build a ModelExport's artifact and publish it, as the export Job's container does.",
    )
    parser.add_argument(
        "--spec", type=Path, required=True, help="ModelExport YAML (the operator's ConfigMap)"
    )
    parser.add_argument("--adapter-uri", help="the adapter folder (required for a fineTuneJob source)")
    parser.add_argument("--base-model-uri", help="the base model (required for a fineTuneJob source)")
    parser.add_argument("--base-revision", help="branch, tag or commit of an hf:// base model")
    parser.add_argument(
        "--workdir", type=Path, required=True, help="scratch folder (needs room for the build)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with _sigterm_raises():
        return run(args)


def run(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        logs = LogSetup(workdir / LOG_FILE)
    except OSError as err:
        message = f"cannot use the work folder {workdir}: {err.strerror or err}"
        print(f"tuneforge export: {message}", file=sys.stderr)
        write_termination_message("WorkdirUnusable", message)
        return exitcodes.FAILED
    # Imported here: torch and the Hub client load only once the command line is right.
    from tuneforge.exporter.export import Export

    export = Export(args)
    try:
        outcome = _outcome(export)
        level = logging.INFO if outcome.exit_code == exitcodes.OK else logging.ERROR
        log.log(level, "%s: %s", outcome.reason, outcome.message)
        export.report(outcome)
        extra = {"artifacts": fit_artifacts(outcome.artifacts)} if outcome.artifacts else {}
        write_termination_message(outcome.reason, outcome.message, **extra)
        return outcome.exit_code
    finally:
        logs.restore()


def _outcome(export: Export) -> Outcome:
    try:
        artifacts, message = export.execute()
        return Outcome(SUCCEEDED_REASON, message, exitcodes.OK, artifacts)
    except (Exception, Terminated) as err:  # noqa: BLE001 - every failure must end in a termination message
        return _failure(err, export.artifacts)


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def _failure(err: BaseException, artifacts: list[dict[str, object]]) -> Outcome:
    """The outcome of a failed export; ``artifacts`` are those published before it failed."""
    from tuneforge.exporter.gguf_errors import GgufError
    from tuneforge.storage import StorageError

    done = list(artifacts)
    if isinstance(err, ExportError | StorageError | GgufError):
        return Outcome(err.reason, str(err), err.exit_code, done)
    if isinstance(err, Terminated):
        message = "stopped by SIGTERM (preemption, eviction or deletion); a retry reuses what was published"
        return Outcome("Terminated", message, exitcodes.PREEMPTED, done)
    if is_out_of_memory(err):
        oom = OutOfMemory(
            f"the exporter ran out of memory ({type(err).__name__}): raise spec.resources.memory"
        )
        return Outcome(oom.reason, oom.message, oom.exit_code, done)
    log.exception("the export failed")
    return Outcome("ExportFailed", f"{type(err).__name__}: {err}", exitcodes.FAILED, done)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception, so a stopped export still writes its termination message."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
