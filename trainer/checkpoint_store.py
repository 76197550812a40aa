"""Checkpoints under ``<spec.output.uri>/checkpoints/`` in the output store, and their background upload.

Upload choice: the Trainer writes a checkpoint to local disk (seconds at most)
and goes on training while a single background thread uploads it with
``upload_tree`` (manifest last = complete) and then deletes what ``keep`` no
longer covers. Training stalls only for the local write. Should uploads fall
behind, a checkpoint still waiting when a newer one arrives is dropped (the
newer one supersedes it), so local disk holds at most two besides the one in
flight. At the end of the run, or on SIGTERM, the trainer waits for the
uploads to finish.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuneforge.storage import MANIFEST_NAME, StorageError, fetch, read_text, upload_tree
from tuneforge.storage.backends import filesystem
from tuneforge.storage.translate import translating
from tuneforge.storage.uri import parse_uri
from tuneforge.trainer.checkpoints import (
    IDENTITY_FILE,
    CheckpointIdentity,
    StoredCheckpoint,
    checkpoint_name,
    checkpoint_step,
    to_delete,
)

log = logging.getLogger(__name__)


class CheckpointStore:
    """The ``checkpoint-<step>`` folders under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self._uri = parse_uri(self.prefix)

    def uri_of(self, step: int) -> str:
        return f"{self.prefix}/{checkpoint_name(step)}"

    def scan(self) -> list[StoredCheckpoint]:
        """Every checkpoint folder holding files, oldest first, complete when its manifest is there.

        One recursive listing of objects: folders are what object keys imply (a store that keeps
        empty directories, as SeaweedFS does after a delete, shows none of them here).
        """
        root = self._uri.fs_path
        with translating(self._uri, "list"):
            fs = filesystem(self._uri)
            fs.invalidate_cache(root)  # another process may have written since
            try:
                paths = fs.find(root)
            except FileNotFoundError:
                return []
        files: dict[str, set[str]] = {}
        for path in paths:
            name, _, rest = str(path)[len(root) :].strip("/").partition("/")
            if rest and checkpoint_step(name) is not None:
                files.setdefault(name, set()).add(rest)
        return sorted(
            StoredCheckpoint(checkpoint_step(name) or 0, name, MANIFEST_NAME in inside)
            for name, inside in files.items()
        )

    def identity(self, step: int) -> CheckpointIdentity | None:
        """The checkpoint's ``tuneforge-checkpoint.json``; None when it has none or it is unreadable."""
        uri = f"{self.uri_of(step)}/{IDENTITY_FILE}"
        try:
            return CheckpointIdentity.from_json(read_text(uri))
        except StorageError as err:
            if err.reason == "NotFound":
                return None
            raise
        except ValueError:
            log.warning("%s is not a valid checkpoint identity file", uri)
            return None

    def fetch(self, step: int, dest: Path) -> Path:
        """Downloads a complete checkpoint into ``dest`` (verified against its manifest)."""
        fetch(self.uri_of(step), dest)
        return dest

    def upload(self, local: Path, step: int) -> str:
        upload_tree(local, self.uri_of(step))
        return self.uri_of(step)

    def delete(self, checkpoint: StoredCheckpoint) -> None:
        """Removes a checkpoint: its manifest first, so it stops counting as complete at once."""
        folder = self._uri.join(checkpoint.name)
        with translating(folder, "delete"):
            fs = filesystem(folder)
            manifest = folder.join(MANIFEST_NAME).fs_path
            if fs.exists(manifest):
                fs.rm_file(manifest)
            if fs.exists(folder.fs_path):
                fs.rm(folder.fs_path, recursive=True)

    def rotate(self, *, keep: int, saved_step: int) -> list[int]:
        """Deletes what ``keep`` no longer covers once ``saved_step`` is complete; the steps deleted."""
        gone = to_delete(self.scan(), keep=keep, saved_step=saved_step)
        for checkpoint in gone:
            self.delete(checkpoint)
        return [c.step for c in gone]


@dataclass(frozen=True)
class Uploaded:
    step: int
    uri: str
    seconds: float


@dataclass(frozen=True)
class UploadFailure:
    step: int
    error: str


class Uploader:
    """One background thread uploading checkpoints in order, newest superseding any still waiting."""

    def __init__(
        self,
        store: CheckpointStore,
        *,
        keep: int,
        on_uploaded: Callable[[Uploaded], None] | None = None,
    ) -> None:
        self.store, self.keep, self.on_uploaded = store, keep, on_uploaded
        self.uploaded: list[Uploaded] = []
        self.failures: list[UploadFailure] = []
        self._cond = threading.Condition()
        self._waiting: tuple[int, Path] | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="checkpoint-upload", daemon=True)
        self._thread.start()

    def submit(self, step: int, folder: Path) -> None:
        """Queues the local checkpoint ``folder``; the uploader owns (and finally deletes) it."""
        with self._cond:
            if self._waiting is not None:
                old_step, old_folder = self._waiting
                log.warning("checkpoint-%d superseded by checkpoint-%d before its upload", old_step, step)
                shutil.rmtree(old_folder, ignore_errors=True)
            self._waiting = (step, folder)
            self._cond.notify_all()

    def drain(self) -> None:
        """Uploads what is queued, then stops the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def _next(self) -> tuple[int, Path] | None:
        with self._cond:
            while self._waiting is None and not self._closed:
                self._cond.wait()
            job, self._waiting = self._waiting, None
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            step, folder = job
            try:
                self._upload(step, folder)
            except Exception as err:  # noqa: BLE001 - the run goes on; the failure is reported
                log.error("checkpoint-%d could not be uploaded to %s: %s", step, self.store.uri_of(step), err)
                self.failures.append(UploadFailure(step, str(err)))
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def _upload(self, step: int, folder: Path) -> None:
        started = time.monotonic()
        uri = self.store.upload(folder, step)
        done = Uploaded(step, uri, time.monotonic() - started)
        self.uploaded.append(done)
        log.info("checkpoint-%d uploaded to %s in %.1f s", step, uri, done.seconds)
        if self.on_uploaded is not None:
            self.on_uploaded(done)
        try:
            deleted = self.store.rotate(keep=self.keep, saved_step=step)
        except StorageError as err:  # the new checkpoint is safe; older ones linger until the next rotation
            log.warning("could not delete older checkpoints under %s: %s", self.store.prefix, err)
            return
        if deleted:
            names = ", ".join(checkpoint_name(s) for s in deleted)
            log.info("deleted %s (spec.checkpoints.keep is %d)", names, self.keep)
