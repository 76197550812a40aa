"""``tuneforge train``: the trainer container's entry point.

Reads the FineTuneJob, validates the data before touching the model, trains a
LoRA adapter with trl, uploads it and the run record, and always ends with a
termination message and an exit code from ``tuneforge.exitcodes``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from tuneforge import exitcodes
from tuneforge.api import FineTuneJob
from tuneforge.api.conditions import SUCCEEDED_REASON
from tuneforge.reporting import Reporter, reporter_from_env
from tuneforge.reporting.progress import rfc3339
from tuneforge.termination import write_termination_message
from tuneforge.trainer.distributed import Worker, route_termination_message
from tuneforge.trainer.errors import OOM_HINT, OutOfMemory, TrainerError
from tuneforge.trainer.logs import LogSetup
from tuneforge.trainer.model import Hardware, artifact_name, check_loadable
from tuneforge.trainer.preemption import handling_sigterm
from tuneforge.trainer.runrecord import output_uris, write_run_record
from tuneforge.trainer.spec import check_supported, load_spec
from tuneforge.trainer.tracking import tracking_session
from tuneforge.trainer.train import Data, Paths, Result, prepare_data, resolve_runtime, run_training

log = logging.getLogger("tuneforge.trainer")

LOG_FILE = "train.log"
SHOWN_PROBLEMS = 20


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # A wrong command line is the operator's bug: leave a termination message saying so.
        write_termination_message("InvalidArguments", f"{self.prog}: {message}")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tuneforge train", description="Fine-tune a model as the FineTuneJob's trainer container does."
    )
    parser.add_argument(
        "--spec", type=Path, required=True, help="FineTuneJob YAML (the operator's ConfigMap)"
    )
    parser.add_argument("--model", type=Path, required=True, help="folder holding the base model")
    parser.add_argument(
        "--dataset",
        type=Path,
        required=True,
        help="training data: a .jsonl/.json/.parquet file, a save_to_disk folder, or a folder of those",
    )
    parser.add_argument("--eval-dataset", type=Path, default=None, help="folder of evaluation data")
    parser.add_argument(
        "--workdir", type=Path, required=True, help="scratch folder; the adapter is saved here"
    )
    return parser


@dataclass
class Outcome:
    reason: str
    message: str
    exit_code: int
    metrics: dict[str, float | int] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """More fields of the termination message (e.g. the checkpoint a preempted run saved)."""


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _count(n: int | float, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def success_message(result: Result, data: Data, artifact_uri: str, artifact: str = "adapter") -> str:
    samples = result.metrics.get("trainSamples", len(data.train))  # after overlength drop
    trained = f"trained {_count(result.steps, 'step')} on {_count(samples, 'sample')}"
    what = "full model" if artifact == "model" else artifact
    parts = [f"{trained}; {what} at {artifact_uri}"]
    if data.skipped:
        parts.append(f"{_count(data.skipped, 'invalid record')} skipped (first: {data.problems[0]})")
    truncated = result.metrics.get("truncatedSamples")
    if truncated:
        parts.append(f"{_count(truncated, 'sample')} longer than maxSeqLength truncated")
    dropped = result.metrics.get("droppedSamples")
    if dropped:
        parts.append(f"{_count(dropped, 'sample')} longer than maxSeqLength dropped")
    return "; ".join(parts)


class Run:
    """One execution of the trainer, from arguments to exit code."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.paths = Paths(args.model, args.dataset, args.eval_dataset, args.workdir)
        self.spec_path: Path = args.spec
        self.job: FineTuneJob | None = None
        self.reporter: Reporter | None = None
        self.data: Data | None = None
        self.result: Result | None = None
        self.phases: dict[str, float] = {}
        self.started = time.time()
        # One of several processes under `tuneforge launch`? Only rank 0 writes (trainer/distributed.py).
        self.worker = Worker.from_env()

    def execute(self) -> int:
        log_file = self.paths.workdir / LOG_FILE
        try:
            self.paths.workdir.mkdir(parents=True, exist_ok=True)
            self.logs = LogSetup(log_file if self.worker.is_main else None)
        except OSError as err:
            message = f"cannot use the work folder {self.paths.workdir}: {err.strerror or err}"
            print(f"tuneforge train: {message}", file=sys.stderr)
            write_termination_message("WorkdirUnusable", message)
            return exitcodes.FAILED
        try:
            outcome = self._outcome()
            outcome = self._record(outcome, log_file)
            self._announce(outcome)
            return outcome.exit_code
        finally:
            self.logs.restore()

    def _outcome(self) -> Outcome:
        try:
            return self._train()
        except TrainerError as err:
            return Outcome(err.reason, err.message, err.exit_code, *self._partial(), extra=err.details)
        except Exception as err:  # noqa: BLE001 - every failure must end in a termination message
            return self._unexpected(err)

    def _train(self) -> Outcome:
        from tuneforge.storage import upload_tree

        self.job = job = load_spec(self.spec_path)
        log.info("FineTuneJob %s/%s (uid %s)", job.metadata.namespace, job.metadata.name, job.metadata.uid)
        self.reporter = (
            reporter_from_env(job.metadata.namespace or "default", job.metadata.name, self.paths.workdir)
            if self.worker.is_main
            else Reporter([])
        )
        check_supported(job.spec)
        hardware = Hardware.detect()
        check_loadable(job.spec, hardware)
        runtime = resolve_runtime(job.spec.hyperparameters, hardware)
        self._progress("validating the dataset")
        with self._phase("data"):
            self.data = prepare_data(job, self.paths)
        with self._phase("train"), tracking_session(job, self.paths.workdir, self.reporter):
            self.result = run_training(job, self.data, runtime, self.paths, self.reporter)
        if not self.worker.is_main:
            steps = _count(self.result.steps, "step")
            message = f"{self.worker.describe()}: trained {steps}; rank 0 uploads the results"
            return Outcome(SUCCEEDED_REASON, message, exitcodes.OK)
        self.reporter.metrics(**self.result.metrics)
        uris = output_uris(job.spec.output.uri)
        artifact = artifact_name(job.spec)  # "adapter", or "model" for full fine-tuning
        self._progress(f"uploading the {artifact}")
        with self._phase("upload"):
            upload_tree(self.paths.workdir / artifact, uris[artifact])
        self.reporter.artifacts(**{artifact: uris[artifact]})
        message = success_message(self.result, self.data, uris[artifact], artifact)
        return Outcome(
            SUCCEEDED_REASON, message, exitcodes.OK, self.result.metrics, {artifact: uris[artifact]}
        )

    def _partial(self) -> tuple[dict[str, float | int], dict[str, str]]:
        return (self.result.metrics if self.result else {}), {}

    def _unexpected(self, err: Exception) -> Outcome:
        from tuneforge.storage import StorageError

        if isinstance(err, StorageError):
            return Outcome(err.reason, str(err), err.exit_code, *self._partial())
        if is_out_of_memory(err):
            oom = OutOfMemory(f"ran out of memory ({type(err).__name__}): {OOM_HINT}")
            return Outcome(oom.reason, oom.message, oom.exit_code, *self._partial())
        log.exception("training failed")
        return Outcome("TrainingFailed", f"{type(err).__name__}: {err}", exitcodes.FAILED, *self._partial())

    def _record(self, outcome: Outcome, log_file: Path) -> Outcome:
        """Write the run record (best effort on failure); a record that cannot be written fails the run."""
        level = logging.INFO if outcome.exit_code == exitcodes.OK else logging.ERROR
        log.log(level, "%s: %s", outcome.reason, outcome.message)
        if self.job is None or not self.worker.is_main:
            return outcome
        from tuneforge.storage import StorageError

        run_uri = output_uris(self.job.spec.output.uri)["runRecord"]
        artifacts = {**outcome.artifacts, "runRecord": run_uri}
        try:
            write_run_record(
                run_uri,
                manifest=self.job.wire(),
                log_file=log_file,
                history=self.result.history if self.result else None,
                status=self._status(outcome, artifacts),
            )
        except (StorageError, OSError) as err:
            log.error("cannot write the run record to %s: %s", run_uri, err)
            if outcome.exit_code == exitcodes.OK:
                reason = getattr(err, "reason", "TransferFailed")
                code = getattr(err, "exit_code", exitcodes.FAILED)
                return Outcome(
                    reason, f"the run record could not be written: {err}", code, outcome.metrics, {}
                )
            return outcome
        outcome.artifacts = artifacts
        if self.reporter is not None:
            self.reporter.artifacts(runRecord=run_uri)
        return outcome

    def _status(self, outcome: Outcome, artifacts: dict[str, str]) -> dict[str, Any]:
        ended = time.time()
        status: dict[str, Any] = {
            "reason": outcome.reason,
            "message": outcome.message,
            "exitCode": outcome.exit_code,
            "metrics": outcome.metrics,
            "artifacts": artifacts,
            "timings": {
                "startTime": rfc3339(self.started),
                "endTime": rfc3339(ended),
                "seconds": round(ended - self.started, 3),
                "phases": {k: round(v, 3) for k, v in self.phases.items()},
            },
        }
        if self.data is not None:
            status["dataset"] = {
                "format": self.data.format,
                "trainRecords": len(self.data.train),
                "evalRecords": len(self.data.eval) if self.data.eval is not None else 0,
                "skippedRecords": self.data.skipped,
                "problems": self.data.problems[:SHOWN_PROBLEMS],
            }
        if self.result is not None and self.result.distributed:
            status["distributed"] = self.result.distributed  # world size, per-rank samples and weights
        return status

    def _announce(self, outcome: Outcome) -> None:
        if self.reporter is not None:
            self.reporter.finish(reason=outcome.reason, message=outcome.message)
        extra = {k: v for k, v in (("metrics", outcome.metrics), ("artifacts", outcome.artifacts)) if v}
        extra.update(outcome.extra)
        write_termination_message(outcome.reason, outcome.message, **extra)

    def _progress(self, message: str) -> None:
        if self.reporter is not None:
            self.reporter.note(message)

    def _phase(self, name: str) -> _Phase:
        return _Phase(self.phases, name)


class _Phase:
    """Times a block into ``phases[name]``."""

    def __init__(self, phases: dict[str, float], name: str) -> None:
        self.phases, self.name = phases, name

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.phases[self.name] = time.monotonic() - self.start


def main(argv: list[str] | None = None) -> int:
    route_termination_message(Worker.from_env())  # under `tuneforge launch`: one file per rank
    args = build_parser().parse_args(argv)
    # SIGTERM ends the run with a checkpoint and reason Preempted (see trainer/preemption.py).
    with handling_sigterm():
        return Run(args).execute()


if __name__ == "__main__":
    sys.exit(main())
