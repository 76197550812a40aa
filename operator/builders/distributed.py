"""Scale-out: one trainer process per GPU, and several nodes.

- Several processes on one node (``spec.resources.gpus`` > 1, or
  ``spec.distributed.gpusPerNode`` > 1): the trainer container runs
  ``tuneforge launch --standalone --nproc-per-node N -- train ...``, torchrun's
  elastic agent with one worker process per GPU (DDP, or FSDP).
- Several nodes (``spec.distributed.nodes`` > 1): an Indexed Job
  (completions = parallelism = nodes) whose pods get stable host names
  ``<job>-<index>.<service>`` from a headless Service owned by the
  FineTuneJob, and torch's static c10d rendezvous: the index-0 pod's agent
  hosts the store at ``<job>-0.<service>:<port>``, and each pod's node rank is
  its completion index (so global rank 0, which uploads the results, is always
  on the index-0 pod).

Pure functions of the validated FineTuneJob, like the rest of the builders.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from tuneforge.api.finetunejob import KIND, FineTuneJob, FineTuneJobSpec
from tuneforge.operator import names
from tuneforge.operator.config import OperatorConfig

# The annotation the Job controller puts on each pod of an Indexed Job.
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# The variable Kubernetes injects into an Indexed Job's containers; declared
# explicitly (from the annotation) so the launch command does not depend on it.
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
RENDEZVOUS_PORT_NAME = "c10d"
SERVICE_COMPONENT = "rendezvous"


@dataclass(frozen=True)
class Layout:
    """How many trainer processes run where."""

    nodes: int
    processes_per_node: int
    strategy: str

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def multi_process(self) -> bool:
        return self.world_size > 1

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1


def layout(spec: FineTuneJobSpec) -> Layout:
    """Processes per node: ``distributed.gpusPerNode``, else one per GPU of ``resources.gpus`` (or 1)."""
    dist = spec.distributed
    per_node = dist.gpus_per_node if dist is not None and dist.gpus_per_node else max(spec.resources.gpus, 1)
    return Layout(
        nodes=dist.nodes if dist is not None else 1,
        processes_per_node=per_node,
        strategy=dist.strategy if dist is not None else "ddp",
    )


def service_name(ftj_name: str) -> str:
    """The headless Service's name: a DNS-1035 label, so it must start with a letter."""
    name = names.child_name(ftj_name)
    return name if name[0].isalpha() else f"tf-{name}"


def master_address(ftj: FineTuneJob) -> str:
    """DNS name of the index-0 pod, resolvable from every pod in the namespace."""
    return f"{names.child_name(ftj.metadata.name)}-0.{service_name(ftj.metadata.name)}"


def build_services(ftj: FineTuneJob, config: OperatorConfig) -> list[dict[str, Any]]:
    """The headless Service a multi-node run needs (none otherwise)."""
    if not layout(ftj.spec).multi_node:
        return []
    meta = ftj.metadata
    port = config.rendezvous_port
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": service_name(meta.name),
                "namespace": meta.namespace,
                "labels": names.labels(meta.name, SERVICE_COMPONENT),
                "ownerReferences": [names.owner_reference(KIND, meta.name, meta.uid or "")],
            },
            "spec": {
                "clusterIP": "None",
                # The pods must find each other while they start, before any is Ready.
                "publishNotReadyAddresses": True,
                "selector": {names.LABEL_FINETUNEJOB: names.child_name(meta.name)},
                "ports": [
                    {"name": RENDEZVOUS_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}
                ],
            },
        }
    ]


def launch_args(ftj: FineTuneJob, config: OperatorConfig, trainer_args: list[str]) -> list[str]:
    """``tuneforge launch`` arguments that run ``trainer_args`` (``train ...``) once per process."""
    shape = layout(ftj.spec)
    args = ["launch", "--nproc-per-node", str(shape.processes_per_node)]
    if shape.multi_node:
        args += [
            "--nnodes",
            str(shape.nodes),
            "--node-rank",
            f"$({COMPLETION_INDEX_ENV})",
            "--master-addr",
            master_address(ftj),
            "--master-port",
            str(config.rendezvous_port),
        ]
    else:
        args.append("--standalone")
    return [*args, "--", *trainer_args]


def _completion_index_env() -> dict[str, Any]:
    path = f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
    return {"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def scale_out(ftj: FineTuneJob, config: OperatorConfig, job: dict[str, Any], trainer: str) -> dict[str, Any]:
    """The single-process Job ``job`` turned into what the spec's layout needs (a copy; unchanged for 1)."""
    shape = layout(ftj.spec)
    if not shape.multi_process:
        return job
    out = copy.deepcopy(job)
    pod = out["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == trainer)
    container["args"] = launch_args(ftj, config, container["args"])
    if shape.multi_node:
        container["env"] = [*container.get("env", []), _completion_index_env()]
        container["ports"] = [
            {"name": RENDEZVOUS_PORT_NAME, "containerPort": config.rendezvous_port, "protocol": "TCP"}
        ]
        out["spec"].update(completionMode="Indexed", completions=shape.nodes, parallelism=shape.nodes)
        # With the Service's name as subdomain, pod <job>-<i> is <job>-<i>.<service> in DNS.
        pod["subdomain"] = service_name(ftj.metadata.name)
    return out
