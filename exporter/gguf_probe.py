"""The llama.cpp side of a verification, run as a child process.

    python -m tuneforge.exporter.gguf_probe GGUF OUT.npz --ids 1,2,3 --text "..." [--lora ADAPTER.gguf]

Loads the GGUF (and a LoRA adapter GGUF) with llama.cpp, evaluates the given
token ids, keeps the logits of the next token, generates a few more tokens
greedily and tokenizes ``--text``; writes all of it to OUT.npz. A child
process, because a bad GGUF (or a llama.cpp built for another CPU) can crash
in native code, and the exporter must live to say so.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def probe(gguf: Path, ids: list[int], text: str, *, lora: Path | None, steps: int) -> dict[str, Any]:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(gguf),
        lora_path=str(lora) if lora else None,
        n_ctx=max(64, len(ids) + steps + 8),
        n_batch=max(64, len(ids)),
        n_threads=len(os.sched_getaffinity(0)),
        logits_all=True,
        seed=0,
        verbose=False,
    )
    llm.eval(ids)
    first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32, copy=True)
    generated: list[int] = []
    for _ in range(steps):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        generated.append(token)
        if llm.token_eos() == token:
            break
        llm.eval([token])
    return {
        "first_logits": first,
        "generated": np.array(generated, dtype=np.int64),
        "generated_text": llm.detokenize(generated).decode("utf-8", errors="replace"),
        "text_ids": np.array(llm.tokenize(text.encode(), add_bos=False, special=False), dtype=np.int64),
        "file_type": int(llm.metadata.get("general.file_type", -1)),
        "architecture": llm.metadata.get("general.architecture", ""),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuneforge.exporter.gguf_probe")
    parser.add_argument("gguf", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ids", required=True, help="comma-separated token ids to evaluate")
    parser.add_argument("--text", default="", help="text to tokenize without special tokens")
    parser.add_argument("--lora", type=Path, default=None, help="a LoRA adapter GGUF to apply")
    parser.add_argument("--steps", type=int, default=4, help="tokens to generate greedily")
    args = parser.parse_args(argv)
    import numpy as np

    result = probe(
        args.gguf, [int(i) for i in args.ids.split(",")], args.text, lora=args.lora, steps=args.steps
    )
    with args.out.open("wb") as out:
        np.savez(out, **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
