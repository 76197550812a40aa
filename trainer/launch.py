"""``tuneforge launch``: the trainer once per GPU (or CPU process), under torchrun's elastic agent.

    tuneforge launch --nproc-per-node 4 --standalone -- train --spec ... --model ...
    tuneforge launch --nproc-per-node 8 --nnodes 2 --node-rank 1 \\
        --master-addr run-0.run --master-port 29500 -- train --spec ...

Why torchrun (``torch.distributed.run``) rather than ``accelerate launch``: it
ships with torch, so the image needs nothing more; transformers' Trainer reads
the RANK / LOCAL_RANK / WORLD_SIZE it sets and builds DDP or FSDP from its own
``TrainingArguments``, so accelerate's config file would add a second place
to configure the same thing; and its static c10d rendezvous is exactly what an
Indexed Job gives: rank 0 at a known address, the node rank from the pod's
completion index.

What this adds to torchrun is what the pod's contract needs (see
docs/architecture.md): the container ends with the trainer's own exit code and
termination message. Each worker writes its message to a private folder
(``TUNEFORGE_RANK_MESSAGES_DIR``); at the end the launcher passes on rank 0's
(or on other nodes, the lowest rank's) result, or the root-cause failure: the
first worker to fail, not the ones stopped because of it. So a dataset error
still fails the Job at once (exit 3) and an out-of-memory still says which
knob to turn. SIGTERM (preemption) goes to every worker; the launcher waits for
their checkpoint and exits 143 like a single trainer would.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from tuneforge import exitcodes
from tuneforge.termination import write_termination_message
from tuneforge.trainer.distributed import RANK_MESSAGES_ENV, rank_message_name
from tuneforge.trainer.errors import OOM_HINT

log = logging.getLogger("tuneforge.launch")

# What the workers run: ``python -m tuneforge.trainer`` is ``tuneforge train``.
TRAINER_MODULE = "tuneforge.trainer"
# The pod's terminationGracePeriodSeconds is 120 s (builders/job.py): after SIGTERM the
# workers get most of it to save their checkpoint before the agent kills them.
SHUTDOWN_TIMEOUT = 110
# How long the index-0 pod waits for the others to reach the rendezvous (and they for it):
# each pod fetches the model on its own first, which can take a while.
RENDEZVOUS_TIMEOUT = 1800
LOG_PREFIX = "[rank${rank}]:"
_UNEXPANDED = re.compile(r"^\$\(.*\)$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        write_termination_message("InvalidArguments", f"{self.prog}: {message}")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tuneforge launch",
        description="Run `tuneforge train` once per GPU (or CPU process) under torchrun's elastic agent; "
        "the container ends with the trainer's exit code and termination message.",
        epilog="Everything after `--` is the trainer's command line, starting with `train`.",
    )
    parser.add_argument("--nproc-per-node", type=int, required=True, help="trainer processes on this node")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes (pods) in the run (default 1)")
    parser.add_argument(
        "--node-rank", default="0", help="this node's rank, 0..nnodes-1 (an Indexed Job's completion index)"
    )
    parser.add_argument("--master-addr", default=None, help="host of the rank-0 node (multi-node runs)")
    parser.add_argument("--master-port", type=int, default=None, help="port of the rendezvous store")
    parser.add_argument(
        "--standalone", action="store_true", help="one node: rendezvous on this machine, on a free port"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- train ARGS...")
    return parser


@dataclass(frozen=True)
class LaunchPlan:
    """The validated command line."""

    nproc_per_node: int
    nnodes: int
    node_rank: int
    master_addr: str | None
    master_port: int | None
    trainer_args: list[str] = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def plan(args: argparse.Namespace) -> LaunchPlan:
    """Check the command line; raises ValueError saying what is wrong."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if command[:1] != ["train"]:
        raise ValueError("expected `-- train ARGS...` after the options (the trainer's command line)")
    if args.nproc_per_node < 1 or args.nnodes < 1:
        raise ValueError("--nproc-per-node and --nnodes must be at least 1")
    node_rank_text = str(args.node_rank).strip()
    if not node_rank_text or _UNEXPANDED.match(node_rank_text):
        raise ValueError(
            f"--node-rank {node_rank_text!r} is not a number: the Job's completion index is missing "
            "(JOB_COMPLETION_INDEX is set only in the pods of an Indexed Job)"
        )
    try:
        node_rank = int(node_rank_text)
    except ValueError:
        raise ValueError(f"--node-rank {node_rank_text!r} is not a number") from None
    if not 0 <= node_rank < args.nnodes:
        raise ValueError(f"--node-rank {node_rank} is outside 0..{args.nnodes - 1}")
    if args.nnodes > 1:
        if args.standalone:
            raise ValueError("--standalone is for one node; several nodes need --master-addr/--master-port")
        if not args.master_addr or not args.master_port:
            raise ValueError("several nodes need --master-addr and --master-port (the rank-0 pod's store)")
    return LaunchPlan(
        args.nproc_per_node, args.nnodes, node_rank, args.master_addr, args.master_port, command[1:]
    )


def torchrun_argv(launch: LaunchPlan, log_dir: Path) -> list[str]:
    """The ``torchrun`` command line for ``launch`` (restarts are the Job's business, not the agent's)."""
    argv = [
        "--nproc-per-node",
        str(launch.nproc_per_node),
        "--max-restarts",
        "0",
        # Both to files (for the agent) and to the console, each line prefixed by its rank.
        "--tee",
        "3",
        "--log-dir",
        str(log_dir),
    ]
    if launch.nnodes == 1:
        # torchrun's --standalone: a private c10d store on a free local port.
        argv += ["--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", "--rdzv-id", uuid.uuid4().hex]
    else:
        argv += [
            "--nnodes",
            str(launch.nnodes),
            "--node-rank",
            str(launch.node_rank),
            "--rdzv-backend",
            "static",
            "--master-addr",
            str(launch.master_addr),
            "--master-port",
            str(launch.master_port),
            "--rdzv-conf",
            f"timeout={RENDEZVOUS_TIMEOUT}",
        ]
    return [*argv, "--module", TRAINER_MODULE, *launch.trainer_args]


@dataclass(frozen=True)
class Ending:
    """What the container reports: the termination message and the exit code."""

    exit_code: int
    reason: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


def read_rank_message(folder: Path, rank: int) -> dict[str, Any] | None:
    path = folder / rank_message_name(rank)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("reason") else None


def _from_message(data: dict[str, Any], exit_code: int) -> Ending:
    extra = {k: v for k, v in data.items() if k not in ("reason", "message")}
    return Ending(exit_code, str(data["reason"]), str(data.get("message") or ""), extra)


def succeeded(folder: Path, ranks: list[int], launch: LaunchPlan) -> Ending:
    """Every worker exited 0: the lowest rank's message (rank 0's results on the first node)."""
    for rank in sorted(ranks):
        data = read_rank_message(folder, rank)
        if data is not None:
            return _from_message(data, exitcodes.OK)
    return Ending(
        exitcodes.OK,
        "Succeeded",
        f"node {launch.node_rank}: {launch.nproc_per_node} trainer process(es) finished",
    )


@dataclass(frozen=True)
class WorkerFailure:
    """One worker's end, as torchrun's agent saw it."""

    rank: int
    exit_code: int
    """The process's exit status; negative: killed by that signal."""
    timestamp: float


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def root_cause(failures: list[WorkerFailure]) -> WorkerFailure:
    """The failure that caused the others: the first in time, passing over workers that were
    stopped (SIGTERM, exit 143) because another one failed."""

    def stopped(f: WorkerFailure) -> bool:
        return f.exit_code in (exitcodes.PREEMPTED, -signal.SIGTERM)

    return min(failures, key=lambda f: (stopped(f), f.timestamp, f.rank))


def failed(folder: Path, failures: list[WorkerFailure], launch: LaunchPlan) -> Ending:
    """The root-cause worker's own message and exit code, or a description of how it died."""
    cause = root_cause(failures)
    where = f"trainer rank {cause.rank} of {launch.world_size}"
    data = read_rank_message(folder, cause.rank)
    if cause.exit_code > 0:
        if data is not None:
            ending = _from_message(data, cause.exit_code)
            if ending.exit_code != exitcodes.PREEMPTED and launch.world_size > 1:
                return Ending(ending.exit_code, ending.reason, f"{where}: {ending.message}", ending.extra)
            return ending
        return Ending(
            cause.exit_code, "TrainingFailed", f"{where} exited with code {cause.exit_code} (see its log)"
        )
    name = _signal_name(-cause.exit_code)
    if cause.exit_code == -signal.SIGKILL:
        # The kernel's out-of-memory killer is the usual sender; a retry may fit, so it stays retryable.
        return Ending(
            exitcodes.FAILED,
            "WorkerKilled",
            f"{where} was killed by {name}, most often the out-of-memory killer: {OOM_HINT}",
        )
    return Ending(exitcodes.FAILED, "WorkerKilled", f"{where} was killed by {name}")


def stopped_by_signal(folder: Path, ranks: list[int], signum: int) -> Ending:
    """The launcher got SIGTERM (preemption): the workers were told too; pass on rank 0's account."""
    for rank in sorted(ranks):
        data = read_rank_message(folder, rank)
        if data is not None and data.get("reason") == "Preempted":
            return _from_message(data, exitcodes.PREEMPTED)
    return Ending(
        exitcodes.PREEMPTED,
        "Preempted",
        f"stopped by {_signal_name(signum)} (preemption, eviction or deletion); a restarted pod "
        "resumes from the newest checkpoint, if any",
    )


def _local_ranks(launch: LaunchPlan) -> list[int]:
    first = launch.node_rank * launch.nproc_per_node
    return list(range(first, first + launch.nproc_per_node))


def run_workers(launch: LaunchPlan, folder: Path) -> Ending:
    """Start the workers under torchrun's agent and wait for them."""
    import os

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, get_args_parser

    os.environ[RANK_MESSAGES_ENV] = str(folder)
    args = get_args_parser().parse_args(torchrun_argv(launch, folder / "logs"))
    config, entrypoint, entry_args = config_from_args(args)
    config.log_line_prefix_template = LOG_PREFIX
    config.shutdown_timeout = SHUTDOWN_TIMEOUT
    ranks = _local_ranks(launch)
    try:
        elastic_launch(config, entrypoint)(*entry_args)
    except ChildFailedError as err:
        failures = [WorkerFailure(rank, f.exitcode, float(f.timestamp)) for rank, f in err.failures.items()]
        return failed(folder, failures, launch)
    except SignalException as err:
        return stopped_by_signal(folder, ranks, int(err.sigval))
    except Exception as err:  # noqa: BLE001 - rendezvous and agent errors end the container too
        log.exception("the launcher failed")
        where = (
            f"the rendezvous at {launch.master_addr}:{launch.master_port} (node {launch.node_rank} of "
            f"{launch.nnodes})"
            if launch.nnodes > 1
            else "the local rendezvous"
        )
        return Ending(
            exitcodes.FAILED, "LaunchFailed", f"could not start the trainers through {where}: {err}"
        )
    return succeeded(folder, ranks, launch)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        launch = plan(args)
    except ValueError as err:
        message = f"tuneforge launch: {err}"
        print(message, file=sys.stderr)
        write_termination_message("InvalidArguments", message)
        return exitcodes.USAGE
    log.info(
        "launching %d trainer process(es) on node %d of %d (world size %d)",
        launch.nproc_per_node,
        launch.node_rank,
        launch.nnodes,
        launch.world_size,
    )
    with tempfile.TemporaryDirectory(prefix="tuneforge-launch-") as scratch:
        ending = run_workers(launch, Path(scratch))
    write_termination_message(ending.reason, ending.message, **ending.extra)
    level = logging.INFO if ending.exit_code == exitcodes.OK else logging.ERROR
    log.log(level, "%s: %s", ending.reason, ending.message)
    return ending.exit_code


if __name__ == "__main__":
    sys.exit(main())
