"""A preempted attempt and the one that resumes it, as the Succeeded condition tells them."""

from __future__ import annotations

import json

from tuneforge.operator.attempts import attempt_number, current_pod, preemption
from tuneforge.operator.status import derive_stage

RUNNING = {"running": {"startedAt": "2026-11-23T11:00:00Z"}}
DISRUPTED = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}


def job(failed=0):
    return {"metadata": {"name": "demo"}, "spec": {}, "status": {"failed": failed, "active": 1}}


def preempted_pod(name="demo-1", created="2026-11-23T10:00:00Z", step=8, disrupted=True):
    said = {"reason": "Preempted", "message": "stopped by SIGTERM at step 8 of 12"}
    if step is not None:
        said["checkpoint"] = {"step": step, "uri": "s3://b/run/checkpoints/checkpoint-8"}
    terminated = {"exitCode": 143, "reason": "Error", "message": json.dumps(said)}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {
            "phase": "Failed",
            "conditions": [DISRUPTED] if disrupted else [],
            "containerStatuses": [{"name": "trainer", "state": {"terminated": terminated}}],
        },
    }


def pod(name="demo-2", created="2026-11-23T10:00:00Z", phase="Running", init=None, trainer=RUNNING):
    status = {"phase": phase, "containerStatuses": [{"name": "trainer", "state": trainer}]}
    if init is not None:
        status["initContainerStatuses"] = [{"name": "fetch-model", "state": init}]
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def stage(the_job, pods):
    return derive_stage(the_job, pods, suspended_by_user=False, queue_name=None, secret_fields={})


def test_the_resumed_attempt_says_it_resumed_from_the_saved_step() -> None:
    got = stage(job(), [preempted_pod(), pod()])
    assert (got.status, got.reason) == ("Unknown", "Training")
    assert got.message == "the trainer is running (attempt 2, resumed from step 8 after a preemption)"


def test_while_the_new_pod_fetches_it_is_resuming() -> None:
    got = stage(job(), [preempted_pod(), pod(phase="Pending", init=RUNNING, trainer={"waiting": {}})])
    assert got.reason == "Initializing"
    assert got.message == "fetching the base model (attempt 2, resuming from step 8 after a preemption)"


def test_between_the_pods_the_job_is_retrying() -> None:
    got = stage(job(), [preempted_pod()])
    assert (got.status, got.reason) == ("Unknown", "Retrying")
    assert got.message == (
        "attempt 1 was preempted after saving a checkpoint at step 8; the Job starts attempt 2"
    )


def test_a_spot_shutdown_without_disruption_condition_is_known_by_the_trainers_word() -> None:
    assert preemption(preempted_pod(disrupted=False), "trainer") is not None
    got = stage(job(), [preempted_pod(disrupted=False), pod()])
    assert "resumed from step 8 after a preemption" in got.message


def test_an_eviction_before_any_checkpoint_says_so_without_a_step() -> None:
    evicted = preempted_pod(step=None)
    assert preemption(evicted, "trainer").step is None
    assert stage(job(), [evicted, pod()]).message == "the trainer is running (attempt 2, after a preemption)"


def test_ignored_failures_still_count_as_attempts() -> None:
    # The Job's status.failed leaves preempted pods out (podFailurePolicy Ignore); the pods do not.
    pods = [preempted_pod("demo-1"), preempted_pod("demo-2"), pod("demo-3")]
    assert attempt_number(job(failed=0), pods, pods[-1]) == 3
    assert "attempt 3, resumed from step 8" in stage(job(), pods).message


def test_a_plain_failure_is_an_attempt_without_a_resume_note() -> None:
    crashed = pod("demo-1", phase="Failed", trainer={"terminated": {"exitCode": 1, "message": "Traceback"}})
    assert preemption(crashed, "trainer") is None
    assert stage(job(failed=1), [crashed, pod()]).message == "the trainer is running (attempt 2)"
    assert stage(job(failed=1), [crashed]).message == "attempt 1 failed; the Job starts attempt 2"


def test_a_replacement_created_in_the_same_second_still_speaks_for_the_run() -> None:
    # Creation times have one-second resolution: the running pod wins over the failed one.
    old, new = preempted_pod("demo-zzz"), pod("demo-aaa")
    assert current_pod([old, new]) is new
    assert stage(job(), [old, new]).reason == "Training"
