"""Logging of an export to stderr and ``<workdir>/export.log``, undone at the end."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that chatter at INFO about things a user of Tuneforge cannot act on.
QUIET: Final = ("httpx", "httpcore", "fsspec", "s3fs", "gcsfs", "urllib3", "filelock", "huggingface_hub")


class LogSetup:
    def __init__(self, log_file: Path) -> None:
        self.root = logging.getLogger()
        self.previous_level = self.root.level
        self.previous_quiet = {name: logging.getLogger(name).level for name in QUIET}
        formatter = logging.Formatter(FORMAT)
        self.handlers: list[logging.Handler] = [
            logging.StreamHandler(),
            logging.FileHandler(log_file, "a", "utf-8"),
        ]
        for handler in self.handlers:
            handler.setFormatter(formatter)
            self.root.addHandler(handler)
        self.root.setLevel(logging.INFO)
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
        # huggingface_hub's progress bars would fill the pod log.
        self.set_progress_env = "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    def restore(self) -> None:
        for handler in self.handlers:
            handler.flush()
            self.root.removeHandler(handler)
            handler.close()
        self.root.setLevel(self.previous_level)
        for name, level in self.previous_quiet.items():
            logging.getLogger(name).setLevel(level)
        if self.set_progress_env:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
