"""Training throughput: Tuneforge's trainer against a plain transformers + peft loop with padded batches.

    .venv/bin/python bench/train_throughput.py [--repeats 3] [--samples 300] [--batch-size 4]
                                               [--pack-length 128] [--threads N]

Both sides train the same model — ``tuneforge tiny-model --size small``, a
~21M-parameter Llama built offline — on the same data (the bundled alpaca
sample, as the same prompt/completion chat rows), with the same LoRA settings
(all-linear, r 16, alpha 32), learning rate and one epoch, in fp32 on this
machine. "Ours" is the real ``tuneforge train`` command, reading a
FineTuneJob spec; its tokens/s comes from its run record. It runs twice:

- packed (the RESULT line's ``tokens_per_s``): ``packing: true`` with
  ``maxSeqLength: 128`` — the setting for short samples (the longest here has
  81 tokens): trl's best-fit packing puts whole samples into rows of up to
  128 tokens, 4 rows a step, and each sample still attends only to itself
  (per-sample position ids), so nothing is truncated, split or mixed;
- default (``default_tokens_per_s``): the defaults, padding-free batches of
  4 samples.

The baseline is the loop a careful user writes by hand: random order,
batches of 4 samples padded to their longest, AdamW, linear decay, gradient
clipping.

Tokens are counted the same way on both sides: real (non-pad) tokens, the
sum of the attention mask (trl's ``num_tokens``). Each side runs in a process
of its own, alternately, ``--repeats`` times; the best run of each counts
(on a shared machine the others only add noise). Peak RSS is each process's
own (``wait4``). The last line is
``RESULT train_throughput tokens_per_s=<ours, packed> baseline=<theirs>
default_tokens_per_s=<ours, defaults> default_ratio=<...> ratio=<ours packed/theirs>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "examples" / "data" / "alpaca-sample.jsonl"
TUNEFORGE = Path(sys.executable).parent / "tuneforge"
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}
LEARNING_RATE = 2e-4
MAX_LENGTH = 1024
SEED = 42


# --- the two contestants, each run in its own process ---------------------------------------


def ours(model: Path, data: Path, work: Path, batch_size: int, pack_length: int | None) -> dict[str, Any]:
    """``tuneforge train`` on a FineTuneJob spec; tokens/s from its run record.

    ``pack_length``: None trains with the defaults (padding-free batches of
    ``batch_size`` samples); a number turns on ``packing`` with that
    ``maxSeqLength`` (rows of up to that many tokens, ``batch_size`` rows a step).
    """
    spec = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "bench", "namespace": "bench", "uid": "bench"},
        "spec": {
            "model": {"source": "file:///bench/model"},
            "dataset": {"source": "file:///bench/data.jsonl", "format": "alpaca"},
            "output": {"uri": (work / "out").as_uri()},
            "resources": {"gpus": 0},
            "hyperparameters": {
                "epochs": 1,
                "batchSize": batch_size,
                "learningRate": LEARNING_RATE,
                "maxSeqLength": pack_length or MAX_LENGTH,
                "loraRank": LORA["r"],
                "loraAlpha": LORA["lora_alpha"],
                "loraDropout": LORA["lora_dropout"],
                "seed": SEED,
                "loggingSteps": 10,
                "packing": pack_length is not None,
            },
        },
    }
    (work / "spec.json").write_text(json.dumps(spec))
    argv = [str(TUNEFORGE), "train", "--spec", str(work / "spec.json"), "--model", str(model)]
    argv += ["--dataset", str(data), "--workdir", str(work / "run")]
    rss_kb = run(argv, work / "ours.log")
    record = json.loads((work / "out" / "run" / "status.json").read_text())
    if record["exitCode"] != 0:
        raise SystemExit(f"tuneforge train failed: {record['reason']}: {record['message']}")
    history = [json.loads(line) for line in (work / "out" / "run" / "metrics.jsonl").read_text().splitlines()]
    tokens = [h["num_tokens"] for h in history if "num_tokens" in h][-1]
    seconds = record["metrics"]["trainRuntimeSeconds"]
    log = (work / "run" / "train.log").read_text()
    batching = "padding-free" if "padding-free" in log else "padded"
    if pack_length is not None:
        batching = f"packed into rows of {pack_length} tokens"
    return {"tokens": tokens, "seconds": seconds, "rss_mb": rss_kb / 1024, "batching": batching}


def baseline(model_dir: Path, data: Path, batch_size: int) -> dict[str, Any]:
    """A plain transformers + peft loop over padded batches (runs in the worker process)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.trainer.dataset import to_trl_rows

    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        LoraConfig(**LORA, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    records = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    examples = []
    for row in to_trl_rows(records, "alpaca", chat_template=True):
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=True, return_dict=True)["input_ids"]
        conversation = row["prompt"] + row["completion"]
        full = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)
        ids = full["input_ids"][:MAX_LENGTH]
        examples.append((ids, ([-100] * len(prompt) + ids[len(prompt) :])[: len(ids)]))
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(SEED)).tolist()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / len(batches))
    pad = tokenizer.pad_token_id
    model.train()
    tokens = 0
    started = time.perf_counter()
    for batch in batches:
        chosen = [examples[i] for i in batch]
        longest = max(len(ids) for ids, _ in chosen)
        input_ids = torch.tensor([ids + [pad] * (longest - len(ids)) for ids, _ in chosen])
        mask = torch.tensor([[1] * len(ids) + [0] * (longest - len(ids)) for ids, _ in chosen])
        labels = torch.tensor([lab + [-100] * (longest - len(lab)) for _, lab in chosen])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        tokens += int(mask.sum())
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "steps": len(batches)}


def run(argv: list[str], log: Path) -> int:
    """Runs ``argv`` to the end; returns its peak RSS in KiB (its own, by wait4)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"{' '.join(argv[:2])} failed ({proc.returncode}); see {log}:\n{tail}")
    return int(usage.ru_maxrss)


def run_baseline(model: Path, data: Path, work: Path, batch_size: int) -> dict[str, Any]:
    result = work / "baseline.json"
    argv = [sys.executable, __file__, "--worker", str(result), "--model", str(model), "--data", str(data)]
    rss_kb = run([*argv, "--batch-size", str(batch_size)], work / "baseline.log")
    return {**json.loads(result.read_text()), "rss_mb": rss_kb / 1024}


# --- the comparison ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.system()


def rate(result: dict[str, Any]) -> float:
    return float(result["tokens"]) / float(result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating (default 3)")
    parser.add_argument("--samples", type=int, default=300, help="training samples, one epoch (default 300)")
    parser.add_argument("--batch-size", type=int, default=4, help="samples per step (default 4, the API's)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of each side (OMP_NUM_THREADS; default: torch's, one per core). On a machine "
        "others load too, 1 avoids the collapse of spinning OpenMP threads that lose their core",
    )
    parser.add_argument(
        "--pack-length",
        type=int,
        default=128,
        help="maxSeqLength of the packed run (default 128; the longest sample has 81 tokens)",
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:  # inherited by both sides' processes
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.worker is not None:  # the baseline's own process
        args.worker.write_text(json.dumps(baseline(args.model, args.data, args.batch_size)))
        return

    from tuneforge.tinymodel import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as scratch:
        root = Path(scratch)
        print("building the ~21M-parameter model (tuneforge tiny-model --size small) ...", flush=True)
        model = build_tiny_model(root / "model", size="small")
        data = root / "train.jsonl"
        lines = [line for line in DATA.read_text().splitlines() if line.strip()][: args.samples]
        data.write_text("\n".join(lines) + "\n")
        print(f"{len(lines)} samples, batch size {args.batch_size}, 1 epoch, LoRA r 16 all-linear, fp32")
        threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {cpu_model()}; threads: {threads}")
        print(f"load average at start: {os.getloadavg()[0]:.1f}")
        sides = {"packed": args.pack_length, "default": None, "baseline": None}
        results: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for attempt in range(args.repeats):
            for side, pack_length in sides.items():
                work = root / f"{side}-{attempt}"
                work.mkdir()
                if side == "baseline":
                    result = run_baseline(model, data, work, args.batch_size)
                else:
                    result = ours(model, data, work, args.batch_size, pack_length)
                results[side].append(result)
                extra = f", {result['batching']} batches" if "batching" in result else ""
                print(
                    f"  {side:<8} run {attempt + 1}: {rate(result):8.1f} tokens/s "
                    f"({result['tokens']} tokens in {result['seconds']:.1f} s), "
                    f"peak RSS {result['rss_mb']:.0f} MB{extra}",
                    flush=True,
                )
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    best = {side: max(runs, key=rate) for side, runs in results.items()}
    packed, default, base = (rate(best[side]) for side in ("packed", "default", "baseline"))
    rss = ", ".join(f"{side} {best[side]['rss_mb']:.0f} MB" for side in best)
    print(f"peak RSS: {rss}")
    print(
        f"ours with the defaults (padding-free batches): {default:.1f} tokens/s, "
        f"{default / base:.3f}x the baseline"
    )
    print(
        f"RESULT train_throughput tokens_per_s={packed:.1f} baseline={base:.1f} "
        f"default_tokens_per_s={default:.1f} default_ratio={default / base:.3f} ratio={packed / base:.3f}"
    )


if __name__ == "__main__":
    main()
