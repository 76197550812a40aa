"""Throughput of an f16 GGUF conversion against a plain copy of the same bytes.

Builds a random Llama (TinyLlama's shape by default: 1.1B parameters, bf16,
2.2 GB on disk in three shards, with the tiny model's tokenizer), then, each
starting with the checkpoint in the page cache:

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
- one_file_copy: the kernel's copy of the same bytes into one file, from a
  32-byte aligned offset as GGUF data starts: the least any GGUF writer does.

``baseline`` is the faster of the two copies (shard_copy, one_file_copy):
``shutil.copyfile`` is sometimes 4x slower for a whole benchmark process on
this VM, which would flatter the ratio.

Before each timed run the page cache holds the checkpoint and ``os.sync()``
has flushed earlier writes, so neither run pays for the other's writeback.
Each is run ``--repeat`` times and the best kept. MB/s is checkpoint bytes
(10^6) per second of wall time. Also printed: the converter's fixed cost (the
same call on the tiny model: interpreter, torch and transformers imports)
and its peak RSS (``RUSAGE_CHILDREN``: the converters are this process's
only children).

    .venv/bin/python bench/gguf_convert.py [--layers N] [--dtype bf16|f16] [--repeat N] [--workdir DIR]

Last line: ``RESULT gguf_convert mb_per_s=<ours> baseline=<faster copy> shard_copy=<MB/s>
one_file_copy=<MB/s> cold_mb_per_s=<cold> cold_ratio=<cold/copy> ratio=<ours/copy>``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def warm(folder: Path) -> None:
    """Reads every file once so each run starts with the checkpoint in the page cache, and nothing dirty."""
    for path in folder.iterdir():
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass
    os.sync()


def timed_copy(model: Path, dest: Path) -> float:
    warm(model)
    dest.mkdir()
    started = time.monotonic()
    for shard in sorted(model.glob("*.safetensors")):
        shutil.copyfile(shard, dest / shard.name)
    seconds = time.monotonic() - started
    shutil.rmtree(dest)
    return seconds


def timed_one_file_copy(model: Path, dest: Path) -> float:
    """The shards' bytes copied by the kernel into one file from a 32-byte (not page) aligned offset.

    What any GGUF writer must at least do: a GGUF is one file, its data starts after a header of
    any length, aligned to 32 bytes. On this VM such a copy is ~1.3-1.5x slower than copying the
    shards as they are (page cache writes that do not start on a page boundary, one large inode).
    """
    warm(model)
    started = time.monotonic()
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        at = 4096 + 32
        for shard in sorted(model.glob("*.safetensors")):
            source, size, done = os.open(shard, os.O_RDONLY), shard.stat().st_size, 0
            try:
                while done < size:
                    done += os.copy_file_range(source, out, size - done, done, at + done)
            finally:
                os.close(source)
            at += size
    finally:
        os.close(out)
    seconds = time.monotonic() - started
    dest.unlink()
    return seconds


def timed_convert(model: Path, out: Path, *, prestarted: bool) -> float:
    from tuneforge.exporter import tool_spares
    from tuneforge.exporter.gguf import convert_to_gguf, prestart_conversions

    if prestarted:
        prestart_conversions()
        if not tool_spares.wait_ready():
            raise SystemExit("the converter's spare process did not start")
    warm(model)
    started = time.monotonic()
    convert_to_gguf(model, out, outtype="f16", timeout=3600)
    seconds = time.monotonic() - started
    out.unlink()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=22, help="decoder layers (22: 1.1B parameters)")
    parser.add_argument("--dtype", choices=("bf16", "f16"), default="bf16", help="the checkpoint's dtype")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best is kept")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    import torch
    from _models import LlamaShape, build_random_llama

    from tuneforge.tinymodel import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="gguf-convert-", dir=args.workdir))
    try:
        tokenizer = build_tiny_model(work / "tiny")
        dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
        started = time.monotonic()
        size = build_random_llama(
            work / "model", LlamaShape(layers=args.layers), dtype=dtype, tokenizer_from=tokenizer
        )
        print(
            f"built a random {args.dtype} Llama of {size / 1e9:.2f} GB in {time.monotonic() - started:.0f} s"
        )
        if size < 1e9:
            print("note: the checkpoint is under 1 GB; the target applies to >= 1 GB")

        for prestarted in (False, True):
            fixed = timed_convert(tokenizer, work / "tiny-f16.gguf", prestarted=prestarted)
            how = "started ahead" if prestarted else "cold"
            print(f"fixed cost of a conversion (the tiny model), converter {how}: {fixed:.2f} s")
        copies, converts, colds, one_file = [], [], [], []
        for run in range(args.repeat):
            copies.append(timed_copy(work / "model", work / f"copy-{run}"))
            one_file.append(timed_one_file_copy(work / "model", work / "one-file"))
            converts.append(timed_convert(work / "model", work / "model-f16.gguf", prestarted=True))
            colds.append(timed_convert(work / "model", work / "model-f16.gguf", prestarted=False))
            print(
                f"run {run + 1}: copy {copies[-1]:.2f} s (into one file: {one_file[-1]:.2f} s),"
                f" convert to f16 GGUF {converts[-1]:.2f} s (cold: {colds[-1]:.2f} s)",
                flush=True,
            )

        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"converter peak RSS {peak_mb:.0f} MB")
        ours, shards, cold, one = (size / 1e6 / min(t) for t in (converts, copies, colds, one_file))
        # The faster of the two copies: shutil's copy swings between ~0.55 s and ~2.2 s here from
        # one process to the next, and a slow one would flatter the ratio.
        baseline = max(shards, one)
        print(
            f"RESULT gguf_convert mb_per_s={ours:.0f} baseline={baseline:.0f} shard_copy={shards:.0f}"
            f" one_file_copy={one:.0f} cold_mb_per_s={cold:.0f} cold_ratio={cold / baseline:.3f}"
            f" ratio={ours / baseline:.3f}"
        )
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
