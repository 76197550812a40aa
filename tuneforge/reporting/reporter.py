"""The Reporter the trainer talks to: progress, metrics and artifacts, fanned out to sinks."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tuneforge.api.finetunejob import PLURAL, Artifacts, Metrics, Progress
from tuneforge.reporting.kube import DEFAULT_INTERVAL, DEFAULT_SERVICEACCOUNT_DIR, KubernetesSink, status_url
from tuneforge.reporting.local import LocalSink
from tuneforge.reporting.progress import eta_seconds, finite, percent, rfc3339

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 1024


class Sink(Protocol):
    def update(self, patch: dict[str, Any], *, force: bool = False) -> None: ...

    def close(self) -> None: ...


class Reporter:
    """Holds the trainer-owned part of the status (progress, metrics, artifacts).

    Each call sends a merge patch of what changed to every sink. No method
    raises: reporting must never fail a training run.
    """

    def __init__(
        self,
        sinks: list[Sink],
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.sinks = sinks
        self._clock = clock
        self._wallclock = wallclock
        self._started: float | None = None
        self._progress: dict[str, Any] = {}
        self._finished = False

    def progress(
        self,
        *,
        step: int,
        total_steps: int | None,
        epoch: float | None,
        total_epochs: float | None,
        loss: float | None,
        tokens_per_second: float | None,
        message: str = "",
    ) -> None:
        """Where training stands; computes percent and ETA from the pace since the total was first known."""
        try:
            now = self._clock()
            step = max(0, int(step))
            total = int(total_steps) if total_steps is not None and total_steps > 0 else None
            if self._started is None and total is not None:
                # Pace counts from the start of training, not from loading data and model.
                self._started = now
            elapsed = now - self._started if self._started is not None else -1.0
            block = Progress(
                step=step,
                total_steps=total,
                epoch=_non_negative(epoch),
                total_epochs=_non_negative(total_epochs),
                percent=percent(step, total),
                eta_seconds=eta_seconds(step, total, elapsed),
                tokens_per_second=_non_negative(tokens_per_second),
                loss=finite(loss),
                message=message[:MESSAGE_LIMIT],
                update_time=rfc3339(self._wallclock()),
            ).wire()
            self._progress = block
            self._send({"progress": block})
        except Exception:  # noqa: BLE001 - reporting never fails training
            log.exception("reporting progress failed")

    def note(self, message: str) -> None:
        """Say what the trainer does now (loading, uploading...), keeping the rest of the progress."""
        try:
            block = {
                **self._progress,
                "message": message[:MESSAGE_LIMIT],
                "updateTime": rfc3339(self._wallclock()),
            }
            block.setdefault("step", 0)
            self._progress = block
            self._send({"progress": block})
        except Exception:  # noqa: BLE001
            log.exception("reporting progress failed")

    def metrics(self, **metrics: float | int) -> None:
        """Metrics by their camelCase API names (trainLoss, evalLoss, perplexity, ...)."""
        try:
            clean = {k: (finite(v) if isinstance(v, float) else v) for k, v in metrics.items()}
            block = Metrics.model_validate({k: v for k, v in clean.items() if v is not None}).wire()
            if block:
                self._send({"metrics": block})
        except Exception:  # noqa: BLE001
            log.exception("reporting metrics failed")

    def artifacts(self, **uris: str) -> None:
        """Artifact locations by their API names (adapter, checkpoints, runRecord)."""
        try:
            block = Artifacts.model_validate(uris).wire()
            if block:
                self._send({"artifacts": block})
        except Exception:  # noqa: BLE001
            log.exception("reporting artifacts failed")

    def status(self, block: dict[str, Any], *, force: bool = False) -> None:
        """A merge patch of other status fields, already in wire form (e.g. a ModelExport's artifacts)."""
        try:
            if block:
                self._send(block, force=force)
        except Exception:  # noqa: BLE001
            log.exception("reporting the status failed")

    def tracking_url(self, url: str) -> None:
        """Link to the experiment tracker's page of this run (status.trackingURL)."""
        try:
            if url:
                self._send({"trackingURL": url[:2048]})
        except Exception:  # noqa: BLE001
            log.exception("reporting the tracking URL failed")

    def finish(self, *, reason: str, message: str) -> None:
        """The last word: the final message, flushed through every sink. Never raises."""
        if self._finished:
            return
        self._finished = True
        try:
            block = {**self._progress, "message": f"{reason}: {message}"[:MESSAGE_LIMIT]}
            block["updateTime"] = rfc3339(self._wallclock())
            block.setdefault("step", 0)
            self._progress = block
            self._send({"progress": block}, force=True)
        except Exception:  # noqa: BLE001
            log.exception("reporting the end of the run failed")
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the %s failed", type(sink).__name__)

    def _send(self, patch: dict[str, Any], *, force: bool = False) -> None:
        for sink in self.sinks:
            try:
                sink.update(patch, force=force)
            except Exception:  # noqa: BLE001
                log.exception("the %s failed", type(sink).__name__)


def _non_negative(value: float | None) -> float | None:
    number = finite(value)
    return None if number is None else max(0.0, number)


def _interval_from_env() -> float:
    raw = os.environ.get("TUNEFORGE_STATUS_INTERVAL")
    if raw is None:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        log.warning(
            "TUNEFORGE_STATUS_INTERVAL=%r is not a non-negative number of seconds; using %g",
            raw,
            DEFAULT_INTERVAL,
        )
        return DEFAULT_INTERVAL
    return value


def reporter_from_env(namespace: str, name: str, workdir: Path, *, plural: str = PLURAL) -> Reporter:
    """The Kubernetes sink when running in a pod (``KUBERNETES_SERVICE_HOST``), else the local one.

    In a pod, progress lines are logged too (no bar: the pod log is not a terminal).
    ``plural`` names the resource whose status is patched (``modelexports`` for the exporter).
    """
    sinks: list[Sink] = []
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if host:
        account = Path(os.environ.get("TUNEFORGE_SERVICEACCOUNT_DIR") or DEFAULT_SERVICEACCOUNT_DIR)
        port = os.environ.get("KUBERNETES_SERVICE_PORT") or "443"
        sinks.append(
            KubernetesSink(
                status_url(host, port, namespace, name, plural),
                token_path=account / "token",
                ca_path=account / "ca.crt",
                interval=_interval_from_env(),
            )
        )
        sinks.append(LocalSink(workdir))
    else:
        sinks.append(LocalSink(workdir, terminal=sys.stderr if sys.stderr.isatty() else None))
    return Reporter(sinks)
