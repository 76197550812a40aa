"""``tuneforge run MANIFEST``: a FineTuneJob on this machine, step by step as in a cluster.

The manifest is the one a cluster user applies. It is validated with the
same models, turned into the very pod spec the operator would create, and
that pod runs here: the fetch init containers, then the trainer, as local
processes with the same commands, arguments and environment. Secrets the
spec names are read from Secret documents in the manifest or in ``--secrets``
files — never from anywhere implicit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from rich.console import Console

from tuneforge import exitcodes
from tuneforge.api.errors import describe
from tuneforge.api.finetunejob import KIND, FineTuneJob
from tuneforge.capabilities import unsupported
from tuneforge.operator.builders import build_job, build_spec_configmap
from tuneforge.operator.config import OperatorConfig
from tuneforge.podrun import MapResolver, PodOutcome, PodRunner

console = Console(stderr=True, highlight=False, soft_wrap=True)


class RunError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_documents(paths: list[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        try:
            loaded = list(yaml.safe_load_all(path.read_text()))
        except OSError as err:
            raise RunError(f"{path}: cannot read: {err.strerror}", exitcodes.USAGE) from err
        except yaml.YAMLError as err:
            raise RunError(f"{path}: not valid YAML: {err}", exitcodes.INVALID_INPUT) from err
        for doc in loaded:
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc:
                raise RunError(f"{path}: every document must be a Kubernetes object with a kind", 3)
            docs.append(doc)
    return docs


def select_job(docs: list[dict[str, Any]], source: Path) -> FineTuneJob:
    found = [d for d in docs if d.get("kind") == KIND]
    if len(found) != 1:
        raise RunError(f"{source}: expected exactly one {KIND}, found {len(found)}", exitcodes.INVALID_INPUT)
    manifest = found[0]
    try:
        ftj = FineTuneJob.from_manifest(manifest)
    except ValidationError as err:
        lines = "\n  ".join(describe(err))
        raise RunError(f"{source}: the {KIND} is invalid:\n  {lines}", exitcodes.INVALID_INPUT) from err
    problems = unsupported(ftj.spec)
    if problems:
        raise RunError(f"{source}: " + "\n  ".join(problems), exitcodes.UNSUPPORTED)
    if ftj.spec.distributed is not None and ftj.spec.distributed.nodes > 1:
        raise RunError(
            f"{source}: spec.distributed.nodes {ftj.spec.distributed.nodes}: tuneforge run runs one pod "
            "on this machine; several nodes need a cluster (several processes on one node run here: "
            "set nodes to 1)",
            exitcodes.UNSUPPORTED,
        )
    meta = ftj.metadata.model_copy(
        update={
            "namespace": ftj.metadata.namespace or "default",
            "uid": ftj.metadata.uid or str(uuid.uuid4()),
            "generation": ftj.metadata.generation or 1,
        }
    )
    return ftj.model_copy(update={"metadata": meta})


def local_pod(ftj: FineTuneJob) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod, spec ConfigMap) exactly as the operator would create them."""
    job = build_job(ftj, OperatorConfig())
    template = job["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job['metadata']['name']}-local",
            "namespace": job["metadata"]["namespace"],
            "uid": str(uuid.uuid4()),
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }
    return pod, build_spec_configmap(ftj)


def parse_claims(values: list[str]) -> dict[str, Path]:
    claims = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise RunError(f"--claim {value!r}: expected NAME=DIR", exitcodes.USAGE)
        if not Path(folder).is_dir():
            raise RunError(f"--claim {value!r}: {folder} is not a folder", exitcodes.USAGE)
        claims[name] = Path(folder).resolve()
    return claims


class StepPrinter:
    """One line per container as it starts and ends."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.started: dict[str, float] = {}

    def __call__(self, status: dict[str, Any]) -> None:
        for item in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            name, state = item["name"], item["state"]
            key = next(iter(state))
            if self.seen.get(name) == key:
                continue
            self.seen[name] = key
            if key == "running":
                self.started[name] = time.monotonic()
                console.print(f"[bold]▶ {name}[/bold]")
            elif key == "terminated":
                took = time.monotonic() - self.started.get(name, time.monotonic())
                code = state["terminated"]["exitCode"]
                mark = "[green]✔[/green]" if code == 0 else f"[red]✘ exit {code}[/red]"
                console.print(f"{mark} {name} ({took:.1f}s)")
            elif key == "waiting" and state["waiting"].get("reason") == "CreateContainerConfigError":
                console.print(f"[red]✘ {name}: {state['waiting'].get('message')}[/red]")


def summarize(outcome: PodOutcome) -> int:
    failed = next((r for r in outcome.results if r.exit_code != 0), None)
    if outcome.phase != "Succeeded":
        if failed is None:
            console.print("[red]The run did not start.[/red]")
            return exitcodes.FAILED
        detail = _parse(failed.message)
        reason = detail.get("reason") or failed.reason
        detail_message = detail.get("message") or failed.message
        console.print(f"[red]Failed in {failed.name}: {reason}[/red]\n{detail_message}")
        return failed.exit_code or exitcodes.FAILED
    trainer = outcome.result("trainer")
    result = _parse(trainer.message if trainer else "")
    artifacts = result.get("artifacts") or {}
    metrics = result.get("metrics") or {}
    console.print("[green bold]Fine-tune finished.[/green bold]")
    if "adapter" in artifacts:
        print(f"adapter:    {artifacts['adapter']}")
    if "runRecord" in artifacts:
        print(f"run record: {artifacts['runRecord']}")
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    if shown:
        print(f"metrics:    {shown}")
    return exitcodes.OK


def _parse(message: str) -> dict[str, Any]:
    try:
        data = json.loads(message)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tuneforge run",
        description="Run a FineTuneJob manifest on this machine: the same fetch and train steps, "
        "commands, arguments and environment the operator puts in the cluster Job.",
    )
    parser.add_argument("manifest", type=Path, help="YAML file with one FineTuneJob (and optionally Secrets)")
    parser.add_argument(
        "--secrets", type=Path, action="append", default=[], help="YAML file of Secrets the spec refers to"
    )
    parser.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a local folder standing for the PersistentVolumeClaim NAME (for pvc:// sources)",
    )
    parser.add_argument("--workdir", type=Path, help="where the pod's volumes go (default: a temporary one)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the work folder afterwards")
    parser.add_argument("--dry-run", action="store_true", help="print the pod spec that would run, and stop")
    args = parser.parse_args(argv)
    try:
        docs = load_documents([args.manifest, *args.secrets])
        ftj = select_job(docs, args.manifest)
        claims = parse_claims(args.claim)
    except RunError as err:
        console.print(f"[red]tuneforge run: {err}[/red]")
        return err.exit_code
    pod, config_map = local_pod(ftj)
    if args.dry_run:
        print(yaml.safe_dump(pod, sort_keys=False))
        return exitcodes.OK
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"tuneforge-{ftj.metadata.name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"Running FineTuneJob [bold]{ftj.metadata.name}[/bold] locally (work folder {workdir})")
    runner = PodRunner(
        pod,
        MapResolver([*docs, config_map], claims=claims),
        workdir,
        cwd=Path.cwd(),
        stream_output=True,
        on_update=StepPrinter(),
    )
    try:
        outcome = runner.run()
    finally:
        if not (args.keep_workdir or args.workdir):
            shutil.rmtree(workdir, ignore_errors=True)
    return summarize(outcome)


if __name__ == "__main__":
    sys.exit(main())
