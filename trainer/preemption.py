"""SIGTERM — preemption, spot reclaim, node drain, pod deletion — as the trainer handles it.

Kubernetes sends SIGTERM, waits the pod's terminationGracePeriodSeconds, then
SIGKILLs. What the trainer does with the signal depends on where it is:

- ``raise`` (loading data and model, or training without spec.checkpoints):
  there is nothing worth saving, so the handler raises :class:`Terminated` at
  once and the run ends with reason Preempted.
- ``defer`` (inside the training loop with spec.checkpoints): the handler only
  records the request; :class:`PreemptionCallback` asks the Trainer to save a
  checkpoint at the next step boundary (or right after an evaluation in
  progress) and to stop; the checkpoint is uploaded, then the run ends with
  reason Preempted.
- ``finish`` (training is done; evaluating, saving and uploading the result):
  stopping now would throw the finished work away, so the run goes on and
  ends normally if the grace period allows.

Either way the exit code is ``exitcodes.PREEMPTED`` (143), which the Job's
podFailurePolicy retries without counting it against backoffLimit.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from transformers import TrainerCallback

from tuneforge import exitcodes
from tuneforge.trainer.errors import TrainerError

log = logging.getLogger(__name__)

PREEMPTED_REASON = "Preempted"
SIGNAL = "stopped by SIGTERM (preemption, eviction or deletion)"
BEFORE_TRAINING = f"{SIGNAL} before training started; a restarted pod starts over"
Mode = Literal["raise", "defer", "finish"]


class Preempted(TrainerError):
    """The run stopped on SIGTERM; a retry resumes from the newest complete checkpoint (or starts over)."""

    reason = PREEMPTED_REASON
    exit_code = exitcodes.PREEMPTED


class Terminated(Preempted):
    """SIGTERM arrived where nothing could be saved."""


class SigtermState:
    """The process-wide SIGTERM state (one per process, like the signal itself)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.mode: Mode = "raise"
        self.received_at: float | None = None
        self.raise_message = BEFORE_TRAINING

    def reset(self) -> None:
        self.requested.clear()
        self.mode = "raise"
        self.received_at = None
        self.raise_message = BEFORE_TRAINING

    def handle(self, signum: int, frame: object) -> None:
        first = not self.requested.is_set()
        self.requested.set()
        if first:
            self.received_at = time.monotonic()
        if self.mode == "raise":
            raise Terminated(self.raise_message)
        if first and self.mode == "defer":
            log.warning("SIGTERM: saving a checkpoint at the next step boundary, then stopping")
        elif first:
            log.warning("SIGTERM: training is done; finishing the upload within the grace period")

    def seconds_since_request(self) -> float | None:
        return None if self.received_at is None else time.monotonic() - self.received_at


SIGTERM = SigtermState()


@contextlib.contextmanager
def handling_sigterm() -> Iterator[SigtermState]:
    """Install the handler for the block (main thread only; elsewhere signals are left alone)."""
    SIGTERM.reset()
    try:
        previous = signal.signal(signal.SIGTERM, SIGTERM.handle)
    except ValueError:  # not the main thread
        yield SIGTERM
        return
    try:
        yield SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


class PreemptionCallback(TrainerCallback):
    """Turns a pending SIGTERM into "save a checkpoint now and stop" at the next boundary.

    In ``raise`` mode (no spec.checkpoints) it raises Terminated there instead: the backstop for a
    handler's exception that the code it interrupted swallowed.
    """

    def __init__(self, state: SigtermState = SIGTERM) -> None:
        self.state = state
        self.stopped_at: int | None = None

    def _stop(self, state: Any, control: Any) -> None:
        if not self.state.requested.is_set():
            return
        if self.state.mode == "raise":
            # The handler raised at once, wherever the main thread was; code that catches every
            # Exception there (logging's Handler.emit does) swallows it and training would go on.
            raise Terminated(self.state.raise_message)
        control.should_save = True
        control.should_training_stop = True
        if self.stopped_at is None:
            self.stopped_at = state.global_step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._stop(state, control)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # An evaluation runs between a step's end and its save: stop right after it.
        self._stop(state, control)
