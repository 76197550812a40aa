"""Job + Pods -> the Succeeded condition, as the operator derives it."""

from __future__ import annotations

import json

import pytest

from tuneforge.operator.status import derive_stage, parse_termination, status_patch

NOW = "2026-11-23T12:00:00Z"


def job(conditions=(), suspend=False, **status):
    return {
        "metadata": {"name": "demo"},
        "spec": {"suspend": suspend},
        "status": {
            "conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions],
            **status,
        },
    }


def pod(name="demo-abc", created="2026-11-23T11:00:00Z", phase="Pending", init=(), main=(), conditions=()):
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {
            "phase": phase,
            "conditions": list(conditions),
            "initContainerStatuses": [{"name": n, "state": s} for n, s in init],
            "containerStatuses": [{"name": n, "state": s} for n, s in main],
        },
    }


def done(code=0, message="", reason=None):
    return {
        "terminated": {
            "exitCode": code,
            "message": message,
            "reason": reason or ("Completed" if not code else "Error"),
        }
    }


RUNNING = {"running": {"startedAt": NOW}}
WAITING = {"waiting": {"reason": "PodInitializing"}}


def stage(j, pods=(), **kw):
    kw.setdefault("suspended_by_user", False)
    kw.setdefault("queue_name", None)
    kw.setdefault("secret_fields", {})
    return derive_stage(j, list(pods), **kw)


@pytest.mark.parametrize(
    ("the_job", "pods", "expected"),
    [
        (None, [], ("Unknown", "Pending")),
        (job(), [], ("Unknown", "Queued")),
        (
            job(),
            [pod(conditions=[{"type": "PodScheduled", "status": "False", "message": "0/3 nodes have GPUs"}])],
            ("Unknown", "Queued"),
        ),
        (
            job(),
            [pod(init=[("fetch-model", RUNNING), ("fetch-dataset", WAITING)], main=[("trainer", WAITING)])],
            ("Unknown", "Initializing"),
        ),
        (
            job(),
            [pod(init=[("fetch-model", done()), ("fetch-dataset", RUNNING)], main=[("trainer", WAITING)])],
            ("Unknown", "Initializing"),
        ),
        (
            job(),
            [pod(phase="Running", init=[("fetch-model", done())], main=[("trainer", RUNNING)])],
            ("Unknown", "Training"),
        ),
        (job([("Complete", "")]), [], ("True", "Succeeded")),
        (job(suspend=True), [], ("Unknown", "Queued")),
    ],
)
def test_stages(the_job, pods, expected):
    got = stage(the_job, pods)
    assert (got.status, got.reason) == expected


def test_user_suspension_is_its_own_stage():
    assert stage(job(suspend=True), suspended_by_user=True).reason == "Suspended"
    assert "Kueue queue team-a" in stage(job(suspend=True), queue_name="team-a").message


def test_the_fetch_that_failed_is_named_with_its_message():
    message = json.dumps(
        {"reason": "NotFound", "message": "s3://models/tiny: no such object; does the bucket exist?"}
    )
    got = stage(
        job([("Failed", "PodFailurePolicy")]),
        [pod(phase="Failed", init=[("fetch-model", done(4, message))], main=[("trainer", WAITING)])],
    )
    assert (got.status, got.reason) == ("False", "FetchModelFailed")
    assert "fetch-model exited with code 4" in got.message
    assert "does the bucket exist" in got.message


def test_the_trainers_own_reason_is_kept():
    message = json.dumps({"reason": "DatasetInvalid", "message": "train.jsonl:3: not valid JSON"})
    got = stage(
        job([("Failed", "PodFailurePolicy")]),
        [pod(phase="Failed", init=[("fetch-model", done())], main=[("trainer", done(3, message))])],
    )
    assert (got.reason, got.status) == ("DatasetInvalid", "False")
    assert "train.jsonl:3" in got.message


def test_oom_kill_says_which_knob_to_turn():
    got = stage(
        job([("Failed", "BackoffLimitExceeded")]), [pod(main=[("trainer", done(137, "", "OOMKilled"))])]
    )
    assert got.reason == "OutOfMemory"
    assert "batchSize" in got.message and "resources.memory" in got.message


def test_exhausted_retries_and_deadline():
    got = stage(job([("Failed", "BackoffLimitExceeded")]), [pod(main=[("trainer", done(1, "boom"))])])
    assert got.reason == "BackoffLimitExceeded" and "backoffLimit" in got.message
    assert stage(job([("Failed", "DeadlineExceeded")]), []).reason == "DeadlineExceeded"


def test_plain_log_tail_becomes_the_message():
    got = stage(
        job([("Failed", "BackoffLimitExceeded")]),
        [pod(main=[("trainer", done(1, "Traceback...\nKeyError"))])],
    )
    assert "KeyError" in got.message


def test_missing_secret_points_at_the_field():
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3-creds" not found'}}
    got = stage(
        job(),
        [pod(init=[("fetch-model", waiting)])],
        secret_fields={"s3-creds": "spec.storage.s3.credentialsSecret"},
    )
    assert (got.status, got.reason) == ("Unknown", "CreateContainerConfigError")
    assert got.message.startswith("container fetch-model: spec.storage.s3.credentialsSecret: secret")


def test_retry_is_counted_in_the_message():
    got = stage(job(failed=1), [pod(phase="Running", main=[("trainer", RUNNING)])])
    assert got.reason == "Training" and "attempt 2" in got.message


def test_newest_pod_decides_while_running():
    old = pod("demo-1", "2026-11-23T10:00:00Z", "Failed", main=[("trainer", done(1))])
    new = pod("demo-2", "2026-11-23T11:00:00Z", "Pending", init=[("fetch-model", RUNNING)])
    assert stage(job(failed=1), [new, old]).reason == "Initializing"


def test_status_patch_keeps_transition_time_while_status_holds():
    ftj = {
        "metadata": {"generation": 3},
        "spec": {},
        "status": {
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "Unknown",
                    "reason": "Queued",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        },
    }
    the_job = job(startTime="2026-11-23T11:59:00Z")
    _, patch = status_patch(
        ftj, the_job, [pod(phase="Running", main=[("trainer", RUNNING)])], secret_fields={}, now=NOW
    )
    cond = patch["conditions"][0]
    assert cond["reason"] == "Training" and cond["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert cond["observedGeneration"] == 3 and patch["observedGeneration"] == 3
    assert patch["jobName"] == "demo" and patch["startTime"] == "2026-11-23T11:59:00Z"
    assert "completionTime" not in patch


def test_success_backfills_what_the_trainer_reported():
    summary = {
        "reason": "Succeeded",
        "message": "adapter at s3://out/a",
        "metrics": {"trainLoss": 1.5},
        "artifacts": {"adapter": "s3://out/a"},
    }
    ftj = {
        "metadata": {"generation": 1},
        "spec": {},
        "status": {"progress": {"percent": 90, "totalSteps": 10}},
    }
    the_job = job([("Complete", "")], completionTime="2026-11-23T12:30:00Z")
    the_pod = pod(phase="Succeeded", main=[("trainer", done(0, json.dumps(summary)))])
    got, patch = status_patch(ftj, the_job, [the_pod], secret_fields={}, now=NOW)
    assert got.status == "True"
    assert patch["conditions"][0]["lastTransitionTime"] == NOW
    assert patch["completionTime"] == "2026-11-23T12:30:00Z"
    assert patch["metrics"] == {"trainLoss": 1.5}
    assert patch["artifacts"] == {"adapter": "s3://out/a"}
    assert patch["progress"]["percent"] == 100 and patch["progress"]["step"] == 10


def test_termination_messages_parse_json_or_text():
    assert parse_termination({"exitCode": 3, "message": '{"reason": "X", "message": "m"}'}).reason == "X"
    plain = parse_termination({"exitCode": 1, "message": "plain", "reason": "Error"})
    assert (plain.reason, plain.message) == ("Error", "plain")
