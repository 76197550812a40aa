"""Throughput of an f16 GGUF conversion against a plain copy of the same bytes.

Builds a random Llama (TinyLlama's shape by default: 1.1B parameters, bf16,
2.2 GB on disk in two shards, with the tiny model's tokenizer), then, each
starting with the checkpoint in the page cache:

- baseline: ``shutil.copyfile`` of every safetensors shard into a fresh
  folder on the same filesystem (the kernel's copy; the lower bound of any
  conversion, which must read and write every byte too);
- ours: ``tuneforge.exporter.gguf.convert_to_gguf(model, out, outtype="f16")``,
  the whole call as the exporter makes it (child process, llama.cpp's
  converter, atomic rename).

Before each timed run the page cache holds the checkpoint and ``os.sync()``
has flushed earlier writes, so neither run pays for the other's writeback.
Each is run ``--repeat`` times and the best kept. MB/s is checkpoint bytes
(10^6) per second of wall time. Also printed: the converter's fixed cost (the
same call on the tiny model: interpreter, torch and transformers imports)
and its peak RSS (``RUSAGE_CHILDREN``: the converters are this process's
only children).

    .venv/bin/python bench/gguf_convert.py [--layers N] [--dtype bf16|f16] [--repeat N] [--workdir DIR]

Last line: ``RESULT gguf_convert mb_per_s=<ours> baseline=<copy> ratio=<ours/copy>``.
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


def timed_convert(model: Path, out: Path) -> float:
    from tuneforge.exporter.gguf import convert_to_gguf

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

        fixed = timed_convert(tokenizer, work / "tiny-f16.gguf")
        print(f"fixed cost of a conversion (the tiny model): {fixed:.2f} s")
        copies, converts = [], []
        for run in range(args.repeat):
            copies.append(timed_copy(work / "model", work / f"copy-{run}"))
            converts.append(timed_convert(work / "model", work / "model-f16.gguf"))
            print(
                f"run {run + 1}: copy {copies[-1]:.2f} s, convert to f16 GGUF {converts[-1]:.2f} s",
                flush=True,
            )

        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"converter peak RSS {peak_mb:.0f} MB")
        ours, baseline = size / 1e6 / min(converts), size / 1e6 / min(copies)
        print(f"RESULT gguf_convert mb_per_s={ours:.0f} baseline={baseline:.0f} ratio={ours / baseline:.3f}")
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
