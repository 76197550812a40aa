"""Peak memory and time of merging a LoRA adapter: Tuneforge's streaming merge against peft's.

Builds a random 1.1B Llama (TinyLlama's shape, bf16, two shards: 2.2 GB on
disk) and a rank-16 LoRA on every linear layer, then merges it twice, each
in a fresh subprocess whose peak RSS comes from ``os.wait4``:

- baseline: ``AutoModelForCausalLM.from_pretrained`` + ``PeftModel.from_pretrained``
  + ``merge_and_unload()`` + ``save_pretrained`` (what the old export job did);
- ours: ``tuneforge.exporter.merge.merge_adapter``.

Each run starts with the checkpoint in the page cache and no dirty pages (``warm``), and
both outputs are compared tensor by tensor: the benchmark fails if they differ.
This process never imports torch: building and comparing run in subprocesses
too, because a child's ru_maxrss counts the parent's resident memory at the
fork (the address space it had before exec).

    .venv/bin/python bench/merge_memory.py [--layers N] [--workdir DIR] [--keep]

Last line: ``RESULT merge_memory peak_rss_mb=<ours> baseline=<peft> ratio=<ours/peft>
time_ratio=<ours/peft>`` (ratio: of peak RSS; time_ratio: of wall time). The line before gives the
ratio of CPU time (user + system), the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PEFT_WORKER = """
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base, adapter, out = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
model.save_pretrained(out)
"""

BUILD_WORKER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from _models import LlamaShape, build_random_llama, build_random_lora
work, layers = Path(sys.argv[2]), int(sys.argv[3])
shape = LlamaShape(layers=layers)
size = build_random_llama(work / "base", shape)
build_random_lora(work / "adapter", shape)
print(f"built a random Llama of {size / 1e9:.2f} GB")
"""

COMPARE_WORKER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from merge_memory import same_tensors
compared, differ = same_tensors(Path(sys.argv[2]), Path(sys.argv[3]))
print(f"compared {compared} tensors bit for bit: {differ} differ")
sys.exit(1 if differ else 0)
"""

OURS_WORKER = """
import sys
from pathlib import Path
from tuneforge.exporter.merge import merge_adapter
base, adapter, out = sys.argv[1:4]
merge_adapter(Path(base), Path(adapter), Path(out))
"""


@dataclass(frozen=True)
class Measured:
    peak_rss_mb: float
    seconds: float
    cpu_seconds: float
    """User + system time: unlike wall time, barely moved by other work on a busy machine."""


def run_worker(code: str, *args: Path) -> Measured:
    """Runs ``code`` in a fresh interpreter: its own peak RSS (not the max of all children), wall time."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)])
    assert "torch" not in sys.modules, "the parent must stay small: see the module docstring"
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed with exit code {proc.returncode}")
    # ru_maxrss is in KiB on Linux.
    return Measured(usage.ru_maxrss / 1024, seconds, usage.ru_utime + usage.ru_stime)


def warm(folder: Path) -> None:
    """Both runs start alike: the checkpoint in the page cache, no dirty pages of earlier writes.

    Without the sync, the second run would wait for the writeback of the first one's output.
    """
    for path in folder.iterdir():
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass
    os.sync()


def same_tensors(a: Path, b: Path) -> tuple[int, int]:
    """(tensors compared, tensors that differ) between two merged checkpoints, one tensor at a time."""
    from safetensors import safe_open

    def index(folder: Path) -> dict[str, Path]:
        out = {}
        for path in folder.glob("*.safetensors"):
            with safe_open(path, "pt") as handle:
                out.update({name: path for name in handle.keys()})
        return out

    left, right = index(a), index(b)
    if set(left) != set(right):
        raise SystemExit(
            f"the merged checkpoints hold different tensors: {sorted(set(left) ^ set(right))[:5]}"
        )
    differ = 0
    for name in sorted(left):
        with safe_open(left[name], "pt") as x, safe_open(right[name], "pt") as y:
            if not _bytes(x.get_tensor(name)).equal(_bytes(y.get_tensor(name))):
                differ += 1
    return len(left), differ


def _bytes(tensor):  # type: ignore[no-untyped-def]
    import torch

    return tensor.reshape(-1).view(torch.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=22, help="decoder layers (22: 1.1B parameters, 2.2 GB)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="merge-memory-", dir=args.workdir))
    try:
        built = run_worker(BUILD_WORKER, HERE, work, Path(str(args.layers)))
        print(f"(built in {built.seconds:.0f} s)", flush=True)
        size = sum(p.stat().st_size for p in (work / "base").glob("*.safetensors"))
        if size < 1e9:
            print("note: the checkpoint is under 1 GB; the target applies to >= 1 GB", flush=True)

        warm(work / "base")
        peft = run_worker(PEFT_WORKER, work / "base", work / "adapter", work / "peft")
        print(
            f"peft merge_and_unload: peak RSS {peft.peak_rss_mb:.0f} MB, {peft.seconds:.1f} s "
            f"({peft.cpu_seconds:.1f} s CPU)",
            flush=True,
        )
        warm(work / "base")
        ours = run_worker(OURS_WORKER, work / "base", work / "adapter", work / "ours")
        print(
            f"streaming merge:       peak RSS {ours.peak_rss_mb:.0f} MB, {ours.seconds:.1f} s "
            f"({ours.cpu_seconds:.1f} s CPU)",
            flush=True,
        )

        run_worker(COMPARE_WORKER, HERE, work / "peft", work / "ours")  # exits non-zero when they differ
        print(f"cpu time ratio (ours/peft): {ours.cpu_seconds / peft.cpu_seconds:.3f}")
        print(
            f"RESULT merge_memory peak_rss_mb={ours.peak_rss_mb:.0f} baseline={peft.peak_rss_mb:.0f} "
            f"ratio={ours.peak_rss_mb / peft.peak_rss_mb:.3f} time_ratio={ours.seconds / peft.seconds:.3f}"
        )
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
