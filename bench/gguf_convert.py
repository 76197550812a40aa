"""Throughput of an f16 GGUF conversion against a plain copy of the same bytes.

Builds a random Llama (TinyLlama's shape by default: 1.1B parameters, 2.2 GB
on disk in three shards, with the tiny model's tokenizer) as an f16 checkpoint
and then as a bf16 one, and times for each, starting with the checkpoint in
the page cache:

- shard_copy: ``shutil.copyfile`` of every safetensors shard into a fresh
  folder on the same filesystem (the kernel's copy; the lower bound of any
  conversion, which must read and write every byte too);
- ours: ``tuneforge.exporter.gguf.convert_to_gguf(model, out, outtype="f16")``,
  the whole call as the exporter makes it (llama.cpp's converter for the
  metadata and vocabulary, our tensor writer, atomic rename), with the
  converter's processes started ahead (``prestart_conversions``) as the
  export pipeline starts them while it fetches and merges: their imports
  (torch, transformers: ~4 s) are off the clock, the rest of their work on it;
- cold: the same call with no process started ahead (``cold_*`` keys);
- one_file_copy: the kernel's copy of the same bytes into one new file, from
  a 32-byte aligned offset as GGUF data starts (through a pipe, as the writer
  copies: ``file_ranges.PipeCopy``);
- preallocated_copy: the same into a file whose blocks were allocated first
  (``file_ranges.preallocate``, timed), as our writer does: not a plain copy,
  so not the baseline, but printed to show how much of the ratio is that
  (here ~0.30 s against ~0.43 s for one_file_copy).

``baseline`` is the faster of the two plain copies (shard_copy,
one_file_copy): ``shutil.copyfile`` is sometimes 4x slower for a whole
benchmark process on this VM, which would flatter the ratio.

Before each timed run the page cache holds the checkpoint, ``os.sync()``
has flushed earlier writes (so no run pays for another's writeback), and
as much fresh memory as the output will take has just been written and
freed (``back_memory``): this VM's balloon hands free memory back to the
host within moments (free page reporting), and a page the host took back
costs a host fault when it is next written, so a run's time otherwise
depended on how long ago memory was last freed (2.2 GB of fresh memory
written in 0.3 s, or in 1.8-5 s after a pause of 2-5 s). Each repetition
first starts the converter's processes (as the pipeline does while it
merges) and waits until they are ready, then times the two copies and the
conversion in an order that rotates from one repetition to the next, then
the cold conversion. Each is run ``--repeat`` times (9) and the best kept:
in a noisy hour (December 6, 2026: copies 0.62-3.3 s) best of 5 gave
ratios 0.786-0.916 from one run of the benchmark to the next, best of 9
0.818 and 0.823. MB/s is
checkpoint bytes (10^6) per second of wall time. Also printed: the
converter's fixed cost (the same call on the tiny model: interpreter, torch
and transformers imports) and its peak RSS (``RUSAGE_CHILDREN``: the
converters are this process's only children).

The f16 checkpoint is the target's case: its GGUF's tensor bytes are the
checkpoint's bytes (q/k rows regrouped), so the copy is of the same bytes. A
bf16 checkpoint (most published models) has every element cast on the way;
on this 2-core VM the cast alone takes ~1.4 s of CPU per 2.2 GB, more than
the copy's whole time, so its ratio has a ceiling well under 0.8 here.

    .venv/bin/python bench/gguf_convert.py [--layers N] [--dtype both|f16|bf16] [--repeat N] [--workdir DIR]

Last line, the f16 checkpoint's figures then the bf16 one's: ``RESULT gguf_convert mb_per_s=<ours>
baseline=<faster plain copy> shard_copy=<MB/s> one_file_copy=<MB/s> preallocated_copy=<MB/s>
cold_mb_per_s=<cold> cold_ratio=<cold/copy> bf16_mb_per_s=<ours> bf16_baseline=<copy> bf16_ratio=<ours/copy>
ratio=<ours/copy>`` (with ``--dtype bf16`` alone, the first keys are the bf16 checkpoint's).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def warm(folder: Path) -> None:
    """Readies the machine for a timed run: the checkpoint in the page cache, nothing dirty, and the
    memory its output will take backed by the host (``back_memory``)."""
    size = 0
    for path in folder.iterdir():
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                size += len(chunk)
    os.sync()
    back_memory(size + (size >> 3))


def back_memory(nbytes: int) -> None:
    """Writes ``nbytes`` of fresh memory and frees it, so the next allocations reuse pages the host backs.

    This VM's balloon reports free memory to the host (free page reporting, ``page_reporting_order``
    9, ``min_free_ms`` 0), which takes it back: a page freed more than a moment ago costs a host fault
    when it is next written. Measured: writing 2.2 GB of fresh memory took 0.3 s right after the
    same amount was freed, and 1.8-5 s after a pause of 2-5 s. Every timed run here (copies and
    conversions alike) writes its output's size of page cache, so without this each run's time
    depends on how long ago memory was last freed, not on its own work.
    """
    import numpy as np

    block = np.empty(nbytes, np.uint8)
    block[::4096] = 1  # one byte per page: every page faulted in and written
    del block


def timed_copy(model: Path, dest: Path) -> float:
    warm(model)
    dest.mkdir()
    started = time.monotonic()
    for shard in sorted(model.glob("*.safetensors")):
        shutil.copyfile(shard, dest / shard.name)
    seconds = time.monotonic() - started
    shutil.rmtree(dest)
    return seconds


def timed_one_file_copy(model: Path, dest: Path, *, preallocated: bool = False) -> float:
    """The shards' bytes copied by the kernel into one file from a 32-byte (not page) aligned offset.

    What any GGUF writer must at least do: a GGUF is one file, its data starts after a header of
    any length, aligned to 32 bytes. Copied as the writer copies (``file_ranges.PipeCopy``): 0.53-0.60 s
    here, as fast as copying the shards as files in a quiet hour, where ``copy_file_range`` took
    0.63-0.65 s. ``preallocated``: into blocks allocated first, as the writer writes.
    """
    from tuneforge.exporter.file_ranges import PipeCopy, preallocate

    warm(model)
    started = time.monotonic()
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        at = 4096 + 32
        if preallocated:
            preallocate(out, at, at + sum(shard.stat().st_size for shard in model.glob("*.safetensors")))
        with PipeCopy() as copies:
            for shard in sorted(model.glob("*.safetensors")):
                source, size = os.open(shard, os.O_RDONLY), shard.stat().st_size
                try:
                    copies.copy(source, out, size, 0, at)
                finally:
                    os.close(source)
                at += size
    finally:
        os.close(out)
    seconds = time.monotonic() - started
    dest.unlink()
    return seconds


def start_spares() -> None:
    """Starts the converters' processes ahead, as the export pipeline does, and waits for them."""
    from tuneforge.exporter import tool_spares
    from tuneforge.exporter.gguf import prestart_conversions

    prestart_conversions()
    if not tool_spares.wait_ready():
        raise SystemExit("the converter's spare process did not start")


def timed_convert(model: Path, out: Path) -> float:
    """``convert_to_gguf`` to f16: in the processes ``start_spares`` started, or cold without them."""
    from tuneforge.exporter.gguf import convert_to_gguf

    warm(model)
    started = time.monotonic()
    convert_to_gguf(model, out, outtype="f16", timeout=3600)
    seconds = time.monotonic() - started
    out.unlink()
    return seconds


@dataclass(frozen=True)
class Measured:
    """Best MB/s of each way of writing one checkpoint's bytes."""

    ours: float
    shard_copy: float
    one_file_copy: float
    preallocated_copy: float
    cold: float

    @property
    def baseline(self) -> float:
        # The faster of the two plain copies: shutil's copy swings between ~0.55 s and ~2.2 s here from
        # one process to the next, and a slow one would flatter the ratio.
        return max(self.shard_copy, self.one_file_copy)

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


def measure(model: Path, size: int, work: Path, repeat: int) -> Measured:
    copies: list[float] = []
    one_file: list[float] = []
    preallocated: list[float] = []
    converts: list[float] = []
    colds: list[float] = []
    timed: list[tuple[list[float], Callable[[], float]]] = [
        (copies, lambda: timed_copy(model, work / "copy")),
        (one_file, lambda: timed_one_file_copy(model, work / "one-file")),
        (preallocated, lambda: timed_one_file_copy(model, work / "one-file", preallocated=True)),
        (converts, lambda: timed_convert(model, work / "model-f16.gguf")),
    ]
    for run in range(repeat):
        start_spares()
        turn = run % len(timed)
        for results, timing in timed[turn:] + timed[:turn]:
            results.append(timing())
        colds.append(timed_convert(model, work / "model-f16.gguf"))
        print(
            f"  run {run + 1}: copy {copies[-1]:.2f} s (into one file: {one_file[-1]:.2f} s,"
            f" preallocated: {preallocated[-1]:.2f} s),"
            f" convert to f16 GGUF {converts[-1]:.2f} s (cold: {colds[-1]:.2f} s)",
            flush=True,
        )
    return Measured(*(size / 1e6 / min(t) for t in (converts, copies, one_file, preallocated, colds)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=22, help="decoder layers (22: 1.1B parameters)")
    parser.add_argument(
        "--dtype", choices=("both", "f16", "bf16"), default="both", help="the checkpoints' dtypes"
    )
    parser.add_argument("--repeat", type=int, default=9, help="runs of each; the best is kept")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    import torch
    from _models import LlamaShape, build_random_llama

    from tuneforge.tinymodel import build_tiny_model

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gguf-convert-", dir=args.workdir))
    try:
        tokenizer = build_tiny_model(work / "tiny")
        for prestarted in (False, True):
            if prestarted:
                start_spares()
            fixed = timed_convert(tokenizer, work / "tiny-f16.gguf")
            how = "started ahead" if prestarted else "cold"
            print(f"fixed cost of a conversion (the tiny model), converter {how}: {fixed:.2f} s")

        results: dict[str, Measured] = {}
        for name in ("f16", "bf16") if args.dtype == "both" else (args.dtype,):
            model = work / f"model-{name}"
            started = time.monotonic()
            dtype = torch.bfloat16 if name == "bf16" else torch.float16
            size = build_random_llama(
                model, LlamaShape(layers=args.layers), dtype=dtype, tokenizer_from=tokenizer
            )
            built = time.monotonic() - started
            print(f"{name} checkpoint: a random Llama of {size / 1e9:.2f} GB, built in {built:.0f} s")
            if size < 1e9:
                print("note: the checkpoint is under 1 GB; the target applies to >= 1 GB")
            results[name] = measure(model, size, work, args.repeat)
            if not args.keep:
                shutil.rmtree(model)

        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"converter peak RSS {peak_mb:.0f} MB")
        # The target's case first (an f16 checkpoint: the GGUF's tensor bytes are the checkpoint's,
        # so the copy is of the same bytes); a bf16 checkpoint's every element is cast on the way.
        main_name = "f16" if "f16" in results else "bf16"
        main = results[main_name]
        fields = [
            f"mb_per_s={main.ours:.0f}",
            f"baseline={main.baseline:.0f}",
            f"shard_copy={main.shard_copy:.0f}",
            f"one_file_copy={main.one_file_copy:.0f}",
            f"preallocated_copy={main.preallocated_copy:.0f}",
            f"cold_mb_per_s={main.cold:.0f}",
            f"cold_ratio={main.cold / main.baseline:.3f}",
        ]
        if main_name == "f16" and "bf16" in results:
            bf16 = results["bf16"]
            fields += [
                f"bf16_mb_per_s={bf16.ours:.0f}",
                f"bf16_baseline={bf16.baseline:.0f}",
                f"bf16_ratio={bf16.ratio:.3f}",
            ]
        print(f"RESULT gguf_convert {' '.join(fields)} ratio={main.ratio:.3f}")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
