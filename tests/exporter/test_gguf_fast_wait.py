"""The tensor writer runs beside llama.cpp's --vocab-only step: it waits for the vocabulary, or stops.

The writer plans the tensors while the converter writes the vocabulary; the exporter moves the
converter's finished file to where the writer waits for it, or, when the converter failed, creates
the stop file, and the writer ends without writing anything. (The path where the vocabulary comes
is covered by test_gguf_fast.py: every fast conversion there goes through it.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tuneforge.exporter.gguf_fast_main import stop_file, wait_for_file
from tuneforge.exporter.gguf_tools import tools_dir


def appear_later(path: Path, after: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), path.write_bytes(b"done")))
    thread.start()
    return thread


def test_the_wait_ends_when_the_file_appears(tmp_path: Path) -> None:
    vocab = tmp_path / "out.gguf.vocab"
    thread = appear_later(vocab, 0.2)
    started = time.monotonic()
    assert wait_for_file(vocab, stop_file(vocab), 30.0)
    assert time.monotonic() - started >= 0.2
    thread.join()


def test_the_wait_ends_without_the_file_when_the_stop_file_appears(tmp_path: Path) -> None:
    vocab = tmp_path / "out.gguf.vocab"
    assert stop_file(vocab).name == "out.gguf.vocab.stop"
    thread = appear_later(stop_file(vocab), 0.1)
    assert not wait_for_file(vocab, stop_file(vocab), 30.0)
    thread.join()


def test_a_wait_past_its_seconds_is_an_error(tmp_path: Path) -> None:
    vocab = tmp_path / "out.gguf.vocab"
    with pytest.raises(TimeoutError, match="did not appear within 0.3 s"):
        wait_for_file(vocab, stop_file(vocab), 0.3)


def test_a_writer_told_to_stop_declines_and_writes_nothing(tiny_model: Path, tmp_path: Path) -> None:
    out, vocab = tmp_path / "out.gguf", tmp_path / "out.gguf.vocab"
    stop_file(vocab).touch()
    run = subprocess.run(
        [sys.executable, "-m", "tuneforge.exporter.gguf_fast_main", str(tiny_model), "--outfile", str(out)]
        + ["--vocab-file", str(vocab), "--tools", str(tools_dir()), "--wait-for-vocab", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {
        "declined": "the converter's --vocab-only run did not complete"
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gguf.vocab.stop"]
