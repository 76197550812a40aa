"""The fast f16 conversion's tensor writer: llama.cpp's metadata and vocabulary, our tensors.

    python -m tuneforge.exporter.gguf_fast_main MODEL_DIR --outfile OUT --vocab-file VOCAB --tools DIR
        [--wait-for-vocab SECONDS]

VOCAB is what ``convert_hf_to_gguf.py MODEL_DIR --outtype f16 --vocab-only`` wrote (``gguf_fast``
runs it beside this process). This process plans the tensors (``gguf_tensors``) from config.json
and the safetensors headers, then, with ``--wait-for-vocab``, waits until VOCAB exists (the
exporter moves the converter's file there once it is complete) or VOCAB.stop does (the converter
failed: nothing is written), then writes OUT: the converter's metadata with our tensor infos
(``gguf_fast_header``), then the tensor data (``gguf_fast_data``).

Prints one JSON line on stdout: ``{"written": true, ...}`` (with where its time went: planning,
waiting for VOCAB, writing), or ``{"declined": "<why>"}`` when the
model is not one the fast path handles (OUT is then not written; the exporter runs the converter).
Imports neither torch nor anything of the exporter that does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tuneforge.exporter import gguf_pack
from tuneforge.exporter.gguf_tensors import (
    ModelShape,
    PlannedTensor,
    SourceTensor,
    Unsupported,
    index_weights,
    model_shape,
    plan_tensors,
)

MAX_WORKERS = 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuneforge.exporter.gguf_fast_main")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--outfile", type=Path, required=True)
    parser.add_argument("--vocab-file", type=Path, required=True, help="the converter's vocab-only GGUF")
    parser.add_argument("--tools", type=Path, required=True, help="llama.cpp's converters (gguf_tools)")
    parser.add_argument("--outtype", default="f16")
    parser.add_argument(
        "--wait-for-vocab",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long VOCAB may take to appear",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        gguf = _vendored_gguf(args.tools)
        shape, plan = _plan(gguf, args.model_dir, args.outtype)
        planned = time.monotonic()
        if args.wait_for_vocab > 0 and not wait_for_file(
            args.vocab_file, stop_file(args.vocab_file), args.wait_for_vocab
        ):
            return _decline("the converter's --vocab-only run did not complete")
        from tuneforge.exporter.gguf_fast_header import check_shape, read_vocab

        arrived = time.monotonic()
        vocab = read_vocab(gguf, args.vocab_file)
        check_shape(vocab, shape)
    except Unsupported as why:
        return _decline(str(why))
    size = _write(gguf, args, vocab, plan)
    done = time.monotonic()
    result = {
        "written": True,
        "tensors": len(plan),
        "bytes": size,
        "seconds": round(done - started, 3),
        "plan_seconds": round(planned - started, 3),
        "vocab_wait_seconds": round(arrived - planned, 3),
        "write_seconds": round(done - arrived, 3),
    }
    print(json.dumps(result), flush=True)
    return 0


def stop_file(vocab_file: Path) -> Path:
    """The file whose appearance tells a waiting writer that VOCAB will not come."""
    return vocab_file.with_name(vocab_file.name + ".stop")


def wait_for_file(path: Path, stop: Path, seconds: float, poll: float = 0.0002) -> bool:
    """True once ``path`` exists, False once ``stop`` does; TimeoutError after ``seconds``.

    Polled: the wait is the converter's ~0.05 s (or its seconds-long start where it was not started
    ahead), and a poll every 0.2 ms costs the other core a few percent of that.
    """
    deadline = time.monotonic() + seconds
    while not path.exists():
        if stop.exists():
            return False
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {seconds:g} s")
        time.sleep(poll)
    return True


def _vendored_gguf(tools: Path) -> Any:
    """llama.cpp's own gguf-py, beside its converters (PyPI's gguf lags behind them), packing fast."""
    sys.path.insert(0, str(tools / "gguf-py"))
    gguf = importlib.import_module("gguf")
    gguf_pack.install(gguf)
    return gguf


def _plan(gguf: Any, model_dir: Path, outtype: str) -> tuple[ModelShape, list[PlannedTensor]]:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if (model_dir / "hf_quant_config.json").exists():
        raise Unsupported("the checkpoint is quantized (hf_quant_config.json)")
    shape = model_shape(config, outtype)
    arch = next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == shape.rule.gguf_arch)
    tensor_map = gguf.get_tensor_name_map(arch, shape.block_count)

    def read_header(path: Path) -> dict[str, SourceTensor]:
        local = gguf.utility.SafetensorsLocal(path)
        return {
            name: SourceTensor(name, t.dtype, tuple(t.shape), path, t.data_range.offset, t.data_range.size)
            for name, t in local.tensors.items()
        }

    return shape, plan_tensors(index_weights(model_dir, read_header), shape, tensor_map)


def _write(gguf: Any, args: argparse.Namespace, vocab: list[Any], plan: list[PlannedTensor]) -> int:
    from tuneforge.exporter.gguf_fast_data import write_data
    from tuneforge.exporter.gguf_fast_header import open_gguf

    writer = open_gguf(gguf, args.outfile, args.model_dir, vocab, plan)
    try:
        out = writer.fout[0]
        workers = min(MAX_WORKERS, len(os.sched_getaffinity(0)))
        return write_data(plan, out.fileno(), out.tell(), workers=workers)
    finally:
        writer.close()


def _decline(why: str) -> int:
    print(json.dumps({"declined": why}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
