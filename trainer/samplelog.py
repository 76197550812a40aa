"""Which samples each optimizer step trained on, when ``TUNEFORGE_SAMPLE_LOG=1`` asks for it.

An observation for audits and for the resume tests (no sample trained twice,
none skipped): a wrapper around the training dataloader's collate function
sees every batch the Trainer draws, and a callback files those samples under
the step that trained them. Training itself is untouched: the wrapper passes
the examples through as they are.

A sample is named by its row in the training dataset as the Trainer holds it
(after tokenization), found by content; rows with identical tokens cannot be
told apart and are named by the first of them (the count is logged).

Each trainer process writes ``<workdir>/samples.jsonl`` (``{"step": N,
"samples": [row, ...]}`` per step) and uploads it at its end to
``<output>/run/samples/<start time>-steps-<first>-<last>.jsonl``, so every
attempt of a preempted run leaves its own record.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

ENV = "TUNEFORGE_SAMPLE_LOG"
FILE_NAME = "samples.jsonl"


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def id_columns(names: Sequence[str]) -> list[str]:
    """The token-id columns that identify a row: input_ids (SFT), prompt/chosen/rejected_input_ids (DPO)."""
    return sorted(n for n in names if n.endswith("input_ids"))


def row_key(ids: Sequence[Sequence[int]]) -> bytes:
    text = "|".join(",".join(map(str, column)) for column in ids)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def index_rows(rows: Sequence[Sequence[Sequence[int]]]) -> tuple[dict[bytes, int], int]:
    """Content key -> first row with that content; and how many rows repeat an earlier one."""
    index: dict[bytes, int] = {}
    for number, ids in enumerate(rows):
        index.setdefault(row_key(ids), number)
    return index, len(rows) - len(index)


class _Recording:
    """A collate function that queues the rows of each batch it collates, then collates them unchanged."""

    def __init__(
        self,
        collate: Callable[[list[Any]], Any],
        columns: list[str],
        index: dict[bytes, int],
        queue: deque[list[int]],
    ) -> None:
        self.collate, self.columns, self.index, self.queue = collate, columns, index, queue

    def __call__(self, examples: list[Any]) -> Any:
        self.queue.append([self.index.get(row_key([e[c] for c in self.columns]), -1) for e in examples])
        return self.collate(examples)


class SampleLogCallback(TrainerCallback):
    """Writes one line per optimizer step: the step and the rows its batches held.

    Batches are collated in the order they are trained, but not at the moment they are:
    accelerate's loader collates one batch ahead (to know which one is last), and a run
    stopped at a step boundary leaves that one untrained. So the collate function queues
    each batch's rows, and each optimizer step takes from the queue as many batches as it
    trained micro-batches (gradient accumulation: one substep each, plus the step itself).
    """

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / FILE_NAME
        self.started = datetime.datetime.now(datetime.UTC)
        self.steps: list[int] = []
        self._queue: deque[list[int]] = deque()
        self._substeps = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        loader = kwargs.get("train_dataloader")
        if loader is None:
            log.warning("%s: the Trainer gave no train_dataloader; no sample log", ENV)
            return
        dataset = loader.dataset
        columns = id_columns(getattr(dataset, "column_names", None) or [])
        if not columns:
            log.warning("%s: the training rows have no token-id column; no sample log", ENV)
            return
        index, repeated = index_rows(list(zip(*(dataset[c] for c in columns), strict=True)))
        if repeated:
            log.warning("sample log: %d training rows repeat an earlier one; named by the first", repeated)
        # accelerate's loader is an adapter over a torch DataLoader that does the collating.
        base = getattr(loader, "base_dataloader", loader)
        base.collate_fn = _Recording(base.collate_fn, columns, index, self._queue)
        log.info("%s: logging the rows each step trains on to %s", ENV, self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._substeps += 1

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        rows: list[int] = []
        for _ in range(self._substeps + 1):
            rows += self._queue.popleft() if self._queue else [-1]
        self._substeps = 0
        line = {"step": state.global_step, "samples": rows}
        self.steps.append(state.global_step)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    def record_name(self) -> str | None:
        """``<start>-steps-<first>-<last>.jsonl``, or None when no step was trained."""
        if not self.steps:
            return None
        stamp = self.started.strftime("%Y%m%dT%H%M%S%fZ")
        return f"{stamp}-steps-{self.steps[0]}-{self.steps[-1]}.jsonl"

    def upload(self, run_uri: str) -> str | None:
        """Copies the log into the run record; never fails the run."""
        from tuneforge.storage import StorageError, upload_file

        name = self.record_name()
        if name is None or not self.path.exists():
            return None
        dest = f"{run_uri.rstrip('/')}/samples/{name}"
        try:
            upload_file(self.path, dest)
        except (StorageError, OSError) as err:
            log.error("could not upload the sample log to %s: %s", dest, err)
            return None
        return dest


def read_sample_log(text: str) -> list[tuple[int, list[int]]]:
    """``(step, rows)`` per line of a sample log."""
    out = []
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)
            out.append((int(entry["step"]), [int(r) for r in entry["samples"]]))
    return out
