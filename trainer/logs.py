"""Logging of a training run: to stderr and to the run's train.log."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from tuneforge.reporting.local import CONSOLE_FLAG

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that chatter at INFO about things a user of Tuneforge cannot act on.
QUIET = ("httpx", "httpcore", "fsspec", "s3fs", "gcsfs", "urllib3", "filelock", "torchao")
# bitsandbytes warns at import about 4-bit CPU kernels that LoRA never uses.
SILENT = ("bitsandbytes",)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now (a progress bar may redirect it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class LogSetup:
    """Root logging to stderr and ``log_file``; ``restore()`` undoes it (the trainer may run in-process)."""

    def __init__(self, log_file: Path | None) -> None:
        self.root = logging.getLogger()
        self.previous_level = self.root.level
        formatter = logging.Formatter(FORMAT)
        console = _StderrHandler()
        console.addFilter(lambda record: getattr(record, CONSOLE_FLAG, True))
        self.handlers: list[logging.Handler] = [console]
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self.handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        for handler in self.handlers:
            handler.setFormatter(formatter)
            self.root.addHandler(handler)
        self.root.setLevel(logging.INFO)
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        for name in SILENT:
            logging.getLogger(name).setLevel(logging.ERROR)
        logging.captureWarnings(True)
        quiet_libraries()

    def flush(self) -> None:
        for handler in self.handlers:
            handler.flush()

    def restore(self) -> None:
        logging.captureWarnings(False)
        for handler in self.handlers:
            handler.flush()
            self.root.removeHandler(handler)
            handler.close()
        self.root.setLevel(self.previous_level)


def quiet_libraries() -> None:
    """Progress bars and advice from the Hugging Face libraries: off."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import datasets
        import transformers

        transformers.utils.logging.set_verbosity_warning()  # type: ignore[no-untyped-call]
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        transformers.utils.logging.disable_default_handler()
        transformers.utils.logging.enable_propagation()
        datasets.utils.logging.disable_progress_bar()
        datasets.utils.logging.set_verbosity_warning()
    except ImportError:
        pass
    # peft asks the model a deprecated question; nothing a user can act on.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
