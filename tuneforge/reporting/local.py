"""The local sink: a progress bar on a terminal (log lines otherwise) and status.json."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, TextIO

from tuneforge.reporting.progress import format_duration, merge_patch, progress_line

log = logging.getLogger("tuneforge.progress")

STATUS_FILE = "status.json"
# LogRecord attribute: False when a console handler should skip the record (a bar shows it already).
CONSOLE_FLAG = "tuneforge_console"


class LocalSink:
    """Keeps ``workdir/status.json`` current and shows progress.

    With ``terminal`` set (stderr is a TTY) it draws a rich progress bar;
    either way it logs one structured line per step reported (marked to stay
    off the console while the bar is drawn).
    """

    def __init__(self, workdir: Path, *, terminal: TextIO | None = None) -> None:
        self.path = Path(workdir) / STATUS_FILE
        self.status: dict[str, Any] = {}
        self._bar = _Bar(terminal) if terminal is not None else None
        self._last_line: str | None = None

    def update(self, patch: dict[str, Any], *, force: bool = False) -> None:
        self.status = merge_patch(self.status, patch)
        self._write()
        progress = self.status.get("progress")
        if not progress or "progress" not in patch:
            return
        if self._bar is not None:
            self._bar.show(progress)
        line = progress_line(progress)
        if line != self._last_line:
            # With a bar on the terminal the line still goes to log files (train.log), not to the console.
            log.info("%s", line, extra={CONSOLE_FLAG: self._bar is None})
            self._last_line = line

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _write(self) -> None:
        # Write then rename, so a reader never sees half a file.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.status, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


class _Bar:
    """A rich progress bar: step/total, loss, ETA."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(file=stream),
            transient=False,
        )
        self._task: Any = None

    def show(self, progress: dict[str, Any]) -> None:
        detail = []
        if progress.get("loss") is not None:
            detail.append(f"loss {progress['loss']:.4g}")
        if progress.get("etaSeconds") is not None:
            detail.append(f"eta {format_duration(progress['etaSeconds'])}")
        if progress.get("message"):
            message = progress["message"]
            detail.append(message if len(message) <= 40 else message[:39] + "…")
        fields = {"total": progress.get("totalSteps"), "completed": progress.get("step", 0)}
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("training", detail=" ".join(detail), **fields)
        else:
            self._progress.update(self._task, detail=" ".join(detail), **fields)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop()
