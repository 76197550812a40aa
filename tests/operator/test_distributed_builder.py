"""Several GPUs and nodes: the launcher command, the Indexed Job, the headless Service, the refusals,
and what the status says about a Job with several pods."""

from __future__ import annotations

import json

import pytest
from support import pss
from support.manifests import BASE, merge

from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.operator.builders import build_children, build_job
from tuneforge.operator.builders.distributed import COMPLETION_INDEX_ANNOTATION, layout, service_name
from tuneforge.operator.config import OperatorConfig
from tuneforge.operator.plan import Plan, Refusal, plan
from tuneforge.operator.status import derive_stage, trainer_result

CONFIG = OperatorConfig()


def trainer(job: dict) -> dict:
    return next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "trainer")


def test_one_gpu_runs_the_trainer_directly_in_a_plain_job(make_ftj):
    ftj = make_ftj()
    job = build_job(ftj, CONFIG)
    assert trainer(job)["args"][0] == "train"
    assert "completionMode" not in job["spec"] and "subdomain" not in job["spec"]["template"]["spec"]
    assert [m["kind"] for m in build_children(ftj, CONFIG)].count("Service") == 0


def test_several_gpus_run_one_process_per_gpu_under_the_launcher(make_ftj):
    ftj = make_ftj(resources={"gpus": 4})
    job = build_job(ftj, CONFIG)
    container = trainer(job)
    args = container["args"]
    assert args[: args.index("--")] == ["launch", "--nproc-per-node", "4", "--standalone"]
    # What follows `--` is the single-process trainer's command line, unchanged.
    assert args[args.index("--") + 1 :] == trainer(build_job(make_ftj(), CONFIG))["args"]
    assert container["command"] == ["tuneforge"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert "completionMode" not in job["spec"]
    assert layout(ftj.spec).world_size == 4


def test_cpu_processes_come_from_gpus_per_node(make_ftj):
    args = trainer(build_job(make_ftj(resources={"gpus": 0}, distributed={"gpusPerNode": 2}), CONFIG))["args"]
    assert args[:3] == ["launch", "--nproc-per-node", "2"]


def test_several_nodes_make_an_indexed_job_with_a_headless_service_and_a_c10d_rendezvous(make_ftj):
    ftj = make_ftj(resources={"gpus": 8}, distributed={"nodes": 3})
    config = OperatorConfig(rendezvous_port=29555)
    children = build_children(ftj, config)
    kinds = [m["kind"] for m in children]
    # The Service exists before the Job, so the pods' names resolve as soon as they start.
    assert kinds.index("Service") < kinds.index("Job")
    service = children[kinds.index("Service")]
    job = children[kinds.index("Job")]

    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == "demo"
    container = trainer(job)
    args = container["args"]
    assert args[: args.index("--")] == [
        "launch",
        "--nproc-per-node",
        "8",
        "--nnodes",
        "3",
        "--node-rank",
        "$(JOB_COMPLETION_INDEX)",
        "--master-addr",
        "demo-0.demo",  # the index-0 pod, <job>-0.<service>
        "--master-port",
        "29555",
    ]
    index_env = next(e for e in container["env"] if e["name"] == "JOB_COMPLETION_INDEX")
    assert index_env["valueFrom"]["fieldRef"]["fieldPath"] == (
        f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
    )
    assert container["ports"] == [{"name": "c10d", "containerPort": 29555, "protocol": "TCP"}]

    spec = service["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    assert spec["ports"] == [{"name": "c10d", "port": 29555, "targetPort": 29555, "protocol": "TCP"}]
    template_labels = job["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= template_labels.items()
    owner = service["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("FineTuneJob", "demo", True)
    assert service["metadata"]["namespace"] == job["metadata"]["namespace"] == "team-a"

    # The same pod hardening, failure policy and limits as a single-pod run.
    assert pss.violations(pod) == []
    assert job["spec"]["podFailurePolicy"] == build_job(make_ftj(), CONFIG)["spec"]["podFailurePolicy"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_a_service_name_starts_with_a_letter():
    assert service_name("7b-run") == "tf-7b-run"
    assert service_name("run-7b") == "run-7b"


def test_the_rendezvous_port_is_operator_configuration():
    from tuneforge.operator.config import from_env

    assert from_env({"TUNEFORGE_RENDEZVOUS_PORT": "31000"}).rendezvous_port == 31000
    assert from_env({}).rendezvous_port == 29500


def decide(**spec):
    return plan(merge(BASE, {"spec": spec}), CONFIG)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"resources": {"gpus": 2}, "distributed": {"gpusPerNode": 4}}, "spec.distributed.gpusPerNode"),
        (
            {"resources": {"gpus": 2}, "checkpoints": {"intervalSteps": 5}},
            "spec.checkpoints with several trainer processes",
        ),
        (
            {"resources": {"gpus": 2}, "method": "qlora", "distributed": {"strategy": "fsdp"}},
            "spec.distributed.strategy fsdp with spec.method qlora",
        ),
    ],
)
def test_combinations_not_built_yet_are_refused_by_name(spec, needle):
    got = decide(**spec)
    assert isinstance(got, Refusal) and got.reason == "NotSupportedYet"
    assert needle in got.message


@pytest.mark.parametrize(
    "spec",
    [
        {"resources": {"gpus": 4}},
        {"resources": {"gpus": 8}, "distributed": {"nodes": 2, "strategy": "fsdp"}},
        {"resources": {"gpus": 0}, "distributed": {"gpusPerNode": 2}},
        {"resources": {"gpus": 2}, "distributed": {"gpusPerNode": 2}},
        {"checkpoints": {"intervalSteps": 5}},  # one process: checkpoints as before
    ],
)
def test_scale_out_specs_are_planned(spec):
    assert isinstance(decide(**spec), Plan)


# --- status of a Job with several pods -------------------------------------------------------

RUNNING = {"running": {"startedAt": "2026-11-23T11:00:01Z"}}
WAITING = {"waiting": {"reason": "PodInitializing"}}


def indexed_pod(index, phase="Running", init=(), main=(), created="2026-11-23T11:00:00Z"):
    return {
        "metadata": {
            "name": f"demo-{index}-abcde",
            "creationTimestamp": created,
            "annotations": {COMPLETION_INDEX_ANNOTATION: str(index)},
        },
        "status": {
            "phase": phase,
            "initContainerStatuses": [{"name": n, "state": s} for n, s in init],
            "containerStatuses": [{"name": n, "state": s} for n, s in main],
        },
    }


def running_job(**status):
    return {"metadata": {"name": "demo"}, "spec": {}, "status": {"active": 2, **status}}


def stage_of(job, pods):
    return derive_stage(job, pods, suspended_by_user=False, queue_name=None, secret_fields={})


def test_the_run_trains_only_once_every_pod_trains():
    fetching = indexed_pod(0, init=[("fetch-model", RUNNING)], main=[("trainer", WAITING)])
    training = indexed_pod(
        1, init=[("fetch-model", {"terminated": {"exitCode": 0}})], main=[("trainer", RUNNING)]
    )
    first = stage_of(running_job(), [fetching, training])
    assert (first.reason, first.message) == ("Initializing", "fetching the base model")
    both = indexed_pod(
        0, init=[("fetch-model", {"terminated": {"exitCode": 0}})], main=[("trainer", RUNNING)]
    )
    assert stage_of(running_job(), [both, training]).reason == "Training"


def message(reason, text, **extra):
    return json.dumps({"reason": reason, "message": text, **extra})


def test_the_results_are_those_of_the_index_0_pod():
    worker = indexed_pod(
        1,
        phase="Succeeded",
        main=[("trainer", {"terminated": {"exitCode": 0, "message": message("Succeeded", "node 1 done")}})],
    )
    first = indexed_pod(
        0,
        phase="Succeeded",
        main=[
            (
                "trainer",
                {
                    "terminated": {
                        "exitCode": 0,
                        "message": message("Succeeded", "trained", artifacts={"adapter": "s3://b/a"}),
                    }
                },
            )
        ],
    )
    result = trainer_result([worker, first])
    assert result is not None and result.message == "trained"
    assert result.data["artifacts"] == {"adapter": "s3://b/a"}


def test_a_failed_pod_of_the_gang_names_its_reason():
    failed = indexed_pod(
        1,
        phase="Failed",
        main=[
            (
                "trainer",
                {
                    "terminated": {
                        "exitCode": 3,
                        "reason": "Error",
                        "message": message("DatasetInvalid", "trainer rank 1 of 2: data.jsonl:3: bad"),
                    }
                },
            )
        ],
    )
    job = running_job(conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}])
    got = stage_of(job, [failed])
    assert (got.status, got.reason) == ("False", "DatasetInvalid")
    assert "trainer rank 1 of 2: data.jsonl:3: bad" in got.message


def test_the_layout_defaults_to_one_process_per_gpu():
    ftj = FineTuneJob.model_validate(
        merge(BASE, {"spec": {"resources": {"gpus": 2}, "distributed": {"nodes": 2}}})
    )
    shape = layout(ftj.spec)
    assert (shape.nodes, shape.processes_per_node, shape.world_size, shape.strategy) == (2, 2, 4, "ddp")


def test_tuneforge_run_refuses_several_nodes_and_runs_several_processes(tmp_path):
    from tuneforge.localrun import RunError, local_pod, select_job

    several_nodes = merge(BASE, {"spec": {"resources": {"gpus": 1}, "distributed": {"nodes": 2}}})
    with pytest.raises(RunError, match="several nodes need a cluster"):
        select_job([several_nodes], tmp_path / "job.yaml")
    one_node = merge(BASE, {"spec": {"resources": {"gpus": 0}, "distributed": {"gpusPerNode": 2}}})
    pod, _ = local_pod(select_job([one_node], tmp_path / "job.yaml"))
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "trainer")
    assert container["args"][:4] == ["launch", "--nproc-per-node", "2", "--standalone"]
