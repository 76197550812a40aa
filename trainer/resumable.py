"""spec.checkpoints in one trainer process: resume, save and upload, stop cleanly on SIGTERM.

``CheckpointSession.open`` runs before the model is loaded: it finds the
newest complete checkpoint under ``<output>/checkpoints/``, refuses one written
for a different training spec or data (``CheckpointMismatch``), and fetches
it. ``session.train(trainer)`` replaces ``trainer.train()``: the Trainer
resumes from that checkpoint (optimizer, scheduler, RNG and data position:
transformers' ``resume_from_checkpoint``), each checkpoint it saves is handed
to a background uploader, and SIGTERM stops it at the next step boundary with
one last checkpoint, uploaded before the run ends with reason Preempted.

Mismatch policy: refuse, never ignore. A resumed run that silently trained on
another spec's optimizer state would be wrong without a trace, and a fresh
start would delete the other run's checkpoints as it rotates its own. The
message names the differing fields and the ways out.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tuneforge import exitcodes
from tuneforge.api import FineTuneJob
from tuneforge.api.finetunejob import Checkpoints
from tuneforge.reporting import Reporter
from tuneforge.trainer import samplelog
from tuneforge.trainer.checkpoint_store import CheckpointStore, Uploaded, Uploader
from tuneforge.trainer.checkpoints import (
    IDENTITY_FILE,
    CheckpointIdentity,
    StoredCheckpoint,
    checkpoint_name,
    checkpoints_prefix,
    differences,
    newest_complete,
)
from tuneforge.trainer.errors import TrainerError
from tuneforge.trainer.preemption import SIGNAL, SIGTERM, Preempted, PreemptionCallback
from tuneforge.trainer.runrecord import output_uris

log = logging.getLogger(__name__)


class CheckpointMismatch(TrainerError):
    """The newest checkpoint under the prefix was trained with another spec or other data."""

    reason = "CheckpointMismatch"
    exit_code = exitcodes.INVALID_INPUT


@dataclass(frozen=True)
class ResumePoint:
    step: int
    path: Path
    uri: str


class CheckpointSession:
    """What spec.checkpoints asks of this process. Without spec.checkpoints it only trains."""

    def __init__(
        self,
        job: FineTuneJob,
        identity: CheckpointIdentity,
        workdir: Path,
        reporter: Reporter,
        store: CheckpointStore | None = None,
        resume: ResumePoint | None = None,
    ) -> None:
        self.job, self.identity, self.workdir, self.reporter = job, identity, workdir, reporter
        self.store, self.resume = store, resume
        self.settings: Checkpoints | None = job.spec.checkpoints

    @classmethod
    def open(
        cls, job: FineTuneJob, train_records: list[dict[str, Any]], workdir: Path, reporter: Reporter
    ) -> CheckpointSession:
        """Find (and fetch) where to resume; refuses a checkpoint of another spec before any model loads."""
        identity = CheckpointIdentity.of(job, train_records)
        settings = job.spec.checkpoints
        if settings is None:
            return cls(job, identity, workdir, reporter)
        store = CheckpointStore(checkpoints_prefix(job.spec.output.uri))
        session = cls(job, identity, workdir, reporter, store)
        found = store.scan()
        if not settings.resume:
            session._clear(found)
            return session
        session.resume = session._resume_point(found)
        if session.resume is not None:
            SIGTERM.raise_message = (
                f"{SIGNAL} before training started; a restarted pod resumes from "
                f"{checkpoint_name(session.resume.step)} again"
            )
        return session

    # --- before training --------------------------------------------------------------

    def _clear(self, found: list[StoredCheckpoint]) -> None:
        assert self.store is not None
        if not found:
            return
        log.info(
            "spec.checkpoints.resume is false: deleting %d checkpoint(s) left under %s by an earlier run",
            len(found),
            self.store.prefix,
        )
        for checkpoint in found:
            self.store.delete(checkpoint)

    def _resume_point(self, found: list[StoredCheckpoint]) -> ResumePoint | None:
        assert self.store is not None
        newest = newest_complete(found)
        for stale in found:
            if not stale.complete and (newest is None or stale.step > newest.step):
                log.warning(
                    "skipping %s under %s: its upload never finished (no _MANIFEST.json)",
                    stale.name,
                    self.store.prefix,
                )
        if newest is None:
            log.info("no complete checkpoint under %s: training from the start", self.store.prefix)
            return None
        self._check_identity(newest)
        self.reporter.note(f"fetching {newest.name}")
        dest = self.workdir / "resume" / newest.name
        shutil.rmtree(dest, ignore_errors=True)
        self.store.fetch(newest.step, dest)
        log.info("fetched %s from %s", newest.name, self.store.uri_of(newest.step))
        return ResumePoint(newest.step, dest, self.store.uri_of(newest.step))

    def _check_identity(self, newest: StoredCheckpoint) -> None:
        assert self.store is not None
        uri = self.store.uri_of(newest.step)
        theirs = self.store.identity(newest.step)
        if theirs is not None and theirs.fingerprint == self.identity.fingerprint:
            return
        if theirs is None:
            why = f"it has no readable {IDENTITY_FILE}, so what it was trained with is unknown"
        else:
            what = "; ".join(differences(theirs, self.identity))
            why = f"it was trained with a different spec or data: {what}"
        raise CheckpointMismatch(
            f"spec.checkpoints.resume: refusing to resume from {uri}: {why}. Give this run its own "
            f"spec.output.uri, delete {self.store.prefix}, or set spec.checkpoints.resume to false to "
            "start over (which deletes the checkpoints there)"
        )

    # --- training -----------------------------------------------------------------------

    def train(self, trainer: Any) -> Any:
        """``trainer.train()``, resumed and checkpointed as spec.checkpoints says.

        Raises Preempted when SIGTERM stopped the training before its last step.
        """
        sample_log = samplelog.SampleLogCallback(self.workdir) if samplelog.enabled() else None
        if sample_log is not None:
            trainer.add_callback(sample_log)
        try:
            if self.settings is None or self.store is None:
                SIGTERM.raise_message = (
                    f"{SIGNAL} during training; spec.checkpoints is not set, so a restarted pod starts over "
                    "(set spec.checkpoints to resume instead)"
                )
                trainer.add_callback(PreemptionCallback())
                output = trainer.train()
            else:
                output = self._train_checkpointed(trainer, self.settings, self.store)
        finally:
            SIGTERM.mode = "finish"  # what is left (evaluate, save, upload) is worth finishing
            if sample_log is not None:
                sample_log.upload(output_uris(self.job.spec.output.uri)["runRecord"])
        return output

    def _train_checkpointed(self, trainer: Any, settings: Checkpoints, store: CheckpointStore) -> Any:
        uploader = Uploader(store, keep=settings.keep)
        handover = _HandOver(self, uploader, self.workdir / "checkpoint-uploads")
        preemption = PreemptionCallback()
        trainer.add_callback(handover)
        trainer.add_callback(preemption)
        resume = str(self.resume.path) if self.resume is not None else None
        SIGTERM.mode = "defer"
        try:
            output = trainer.train(resume_from_checkpoint=resume)
        finally:
            if handover.pending(uploader):
                self.reporter.note("uploading the checkpoint")
            uploader.drain()
            handover.report(uploader)
        stopped = preemption.stopped_at
        if stopped is not None and trainer.state.global_step < (trainer.state.max_steps or 0):
            raise self._preempted(stopped, trainer.state.max_steps, uploader)
        return output

    def _preempted(self, step: int, total: int, uploader: Uploader) -> Preempted:
        assert self.store is not None
        waited = SIGTERM.seconds_since_request()
        uploaded = next((u for u in uploader.uploaded if u.step == step), None)
        where = f"{SIGNAL} at step {step} of {total}"
        if uploaded is not None:
            after = f" {waited:.1f} s after the signal" if waited is not None else ""
            error = Preempted(
                f"{where}; {checkpoint_name(step)} uploaded to {uploaded.uri}{after}; "
                "a restarted pod resumes from it"
            )
            error.details = {"checkpoint": {"step": step, "uri": uploaded.uri}}
            return error
        failure = next((f.error for f in uploader.failures if f.step == step), "it was not saved")
        earlier = [u.step for u in uploader.uploaded] + ([self.resume.step] if self.resume else [])
        fallback = f"resumes from {checkpoint_name(max(earlier))}" if earlier else "starts over"
        error = Preempted(
            f"{where}; {checkpoint_name(step)} could not be uploaded ({failure}); a restarted pod {fallback}"
        )
        if earlier:
            error.details = {"checkpoint": {"step": max(earlier), "uri": self.store.uri_of(max(earlier))}}
        return error


class _HandOver(TrainerCallback):
    """Stamps each saved checkpoint with its identity and hands it to the uploader; reports progress."""

    def __init__(self, session: CheckpointSession, uploader: Uploader, staging: Path) -> None:
        self.session, self.uploader, self.staging = session, uploader, staging
        self.submitted: list[int] = []
        self._reported = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        resume = self.session.resume
        if resume is not None:
            log.info(
                "resumed from step %d (%s): weights, optimizer, scheduler, RNG and data position restored",
                resume.step,
                resume.uri,
            )
            self.session.reporter.note(f"resumed from step {resume.step} ({checkpoint_name(resume.step)})")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        folder = Path(args.output_dir) / checkpoint_name(step)
        if not folder.is_dir():
            log.error("the Trainer reported saving %s, but %s does not exist", checkpoint_name(step), folder)
            return
        (folder / IDENTITY_FILE).write_text(self.session.identity.at_step(step).to_json(), encoding="utf-8")
        # Moved, not copied: the same filesystem, so the Trainer goes on at once.
        self.staging.mkdir(parents=True, exist_ok=True)
        staged = self.staging / folder.name
        shutil.rmtree(staged, ignore_errors=True)
        folder.rename(staged)
        self.uploader.submit(step, staged)
        self.submitted.append(step)
        self.report(self.uploader)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.report(self.uploader)

    def pending(self, uploader: Uploader) -> bool:
        done = {u.step for u in uploader.uploaded} | {f.step for f in uploader.failures}
        return any(step not in done for step in self.submitted)

    def report(self, uploader: Uploader) -> None:
        """status.artifacts.checkpoints, once the first checkpoint is complete (from the training thread)."""
        if self._reported or not uploader.uploaded or self.session.store is None:
            return
        self._reported = True
        self.session.reporter.artifacts(checkpoints=self.session.store.prefix)


__all__ = ["CheckpointMismatch", "CheckpointSession", "ResumePoint", "Uploaded"]
