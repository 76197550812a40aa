"""The local pod engine: what a kubelet does, with processes and folders."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from tuneforge.podrun import MapResolver, PodRunner
from tuneforge.podrun.materialize import expand
from tuneforge.podrun.paths import Mount, rewrite


def py(code: str) -> dict:
    return {"command": ["python", "-c", code]}


def make_pod(init, containers, volumes=None):
    return {
        "metadata": {"name": "p-1", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
        "spec": {
            "serviceAccountName": "sa",
            "initContainers": init,
            "containers": containers,
            "volumes": volumes or [{"name": "work", "emptyDir": {}}],
        },
    }


WORK = [{"name": "work", "mountPath": "/workspace"}]


def test_init_output_reaches_the_main_container_through_the_mapped_volume(tmp_path):
    writer = {
        "name": "write",
        **py("import sys, pathlib; pathlib.Path(sys.argv[1]).write_text('hello')"),
        "args": ["/workspace/greeting"],
        "volumeMounts": WORK,
    }
    reader = {
        "name": "read",
        **py("import os, pathlib; print(pathlib.Path(os.environ['F']).read_text())"),
        "env": [{"name": "F", "value": "/workspace/greeting"}],
        "volumeMounts": WORK,
    }
    outcome = PodRunner(make_pod([writer], [reader]), MapResolver(), tmp_path).run()
    assert outcome.phase == "Succeeded"
    log = outcome.result("read").log.read_text()
    assert log.strip() == "hello"
    assert (tmp_path / "volumes" / "work" / "greeting").read_text() == "hello"


def test_env_resolution_follows_kubernetes(tmp_path):
    secret = {
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"K": base64.b64encode(b"s3cr3t").decode()},
    }
    config = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"mode": "fast", "other": "x"}}
    container = {
        "name": "main",
        **py("import os, json; print(json.dumps({k: os.getenv(k) for k in 'A B C D E F G other'.split()}))"),
        "envFrom": [{"configMapRef": {"name": "c"}}],
        "env": [
            {"name": "A", "value": "plain"},
            {"name": "B", "value": "$(A)-expanded-$$(A)"},
            {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "K"}}},
            {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
            {"name": "E", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "F", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "K", "optional": True}}},
            {"name": "G", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        ],
    }
    outcome = PodRunner(make_pod([], [container]), MapResolver([secret, config]), tmp_path).run()
    got = json.loads(outcome.result("main").log.read_text())
    assert got == {
        "A": "plain",
        "B": "plain-expanded-$(A)",
        "C": "s3cr3t",
        "D": "fast",
        "E": "ns",
        "F": None,
        "G": "x",
        "other": "x",
    }


def test_the_host_environment_does_not_leak_in(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_LEAK_CHECK", "leaked")
    container = {"name": "main", **py("import os; print(os.environ.get('TUNEFORGE_LEAK_CHECK'))")}
    outcome = PodRunner(make_pod([], [container]), MapResolver(), tmp_path).run()
    assert outcome.result("main").log.read_text().strip() == "None"


def test_termination_message_and_failure_stop_the_pod(tmp_path):
    failing = {
        "name": "fetch",
        **py("import os, sys; open(os.environ['T'], 'w').write('{\"reason\": \"NotFound\"}'); sys.exit(4)"),
        "env": [{"name": "T", "value": "/dev/termination-log"}],
        "terminationMessagePath": "/dev/termination-log",
    }
    never = {"name": "train", **py("open('/should-not-run', 'w')")}
    updates: list[dict] = []
    outcome = PodRunner(make_pod([failing], [never]), MapResolver(), tmp_path, on_update=updates.append).run()
    assert outcome.phase == "Failed"
    assert [r.name for r in outcome.results] == ["fetch"]
    assert outcome.results[0].exit_code == 4
    assert json.loads(outcome.results[0].message) == {"reason": "NotFound"}
    final = updates[-1]
    assert final["phase"] == "Failed"
    assert final["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert final["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_log_tail_is_the_message_when_the_process_wrote_none(tmp_path):
    container = {
        "name": "main",
        **py("import sys; print('last words'); sys.exit(1)"),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    outcome = PodRunner(make_pod([], [container]), MapResolver(), tmp_path).run()
    assert outcome.result("main").message.strip() == "last words"


def test_missing_secret_is_a_config_error_naming_it(tmp_path):
    container = {
        "name": "main",
        **py("pass"),
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "K"}}}],
    }
    updates: list[dict] = []
    outcome = PodRunner(make_pod([], [container]), MapResolver(), tmp_path, on_update=updates.append).run()
    assert outcome.phase == "Failed"
    assert outcome.result("main").reason == "CreateContainerConfigError"
    assert outcome.result("main").message == 'secret "creds" not found'
    waiting = [u["containerStatuses"][0]["state"].get("waiting", {}) for u in updates]
    assert {"reason": "CreateContainerConfigError", "message": 'secret "creds" not found'} in waiting


def test_a_secret_that_appears_later_is_picked_up_when_retrying(tmp_path):
    resolver = MapResolver()
    container = {
        "name": "main",
        **py("import os; print(os.environ['X'])"),
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "late", "key": "K"}}}],
    }
    runner = PodRunner(make_pod([], [container]), resolver, tmp_path, config_retry=0.05)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(runner.run()))
    thread.start()
    time.sleep(0.3)
    resolver.add({"kind": "Secret", "metadata": {"name": "late"}, "stringData": {"K": "now"}})
    thread.join(30)
    assert result[0].phase == "Succeeded"
    assert result[0].result("main").log.read_text().strip() == "now"


def test_volumes_from_configmaps_secrets_and_projections(tmp_path):
    volumes = [
        {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "spec.yaml", "path": "spec.yaml"}]}},
        {"name": "key", "secret": {"secretName": "s"}},
        {
            "name": "api",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "optional": True}},
                    {
                        "downwardAPI": {
                            "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                        }
                    },
                ]
            },
        },
    ]
    code = "import sys, pathlib; print('|'.join(pathlib.Path(p).read_text() for p in sys.argv[1:]))"
    container = {
        "name": "main",
        **py(code),
        "args": ["/etc/cfg/spec.yaml", "/var/key/key.json", "/var/api/token", "/var/api/namespace"],
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "key", "mountPath": "/var/key"},
            {"name": "api", "mountPath": "/var/api"},
        ],
    }
    objects = [
        {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"spec.yaml": "a: 1"}},
        {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"key.json": "{}"}},
    ]
    outcome = PodRunner(make_pod([], [container], volumes), MapResolver(objects, token="tok"), tmp_path).run()
    assert outcome.result("main").log.read_text().strip() == "a: 1|{}|tok|ns"


def test_unsupported_volume_kinds_are_refused_clearly(tmp_path):
    volumes = [{"name": "host", "hostPath": {"path": "/"}}]
    outcome = PodRunner(
        make_pod([], [{"name": "main", **py("pass")}], volumes), MapResolver(), tmp_path
    ).run()
    assert outcome.phase == "Failed"


def test_missing_executable_cannot_run(tmp_path):
    container = {"name": "main", "command": ["no-such-binary-tuneforge"]}
    outcome = PodRunner(make_pod([], [container]), MapResolver(), tmp_path).run()
    assert (outcome.result("main").exit_code, outcome.result("main").reason) == (127, "ContainerCannotRun")


def test_terminate_stops_a_running_pod(tmp_path):
    container = {"name": "main", **py("import time; time.sleep(60)")}
    runner = PodRunner(make_pod([], [container]), MapResolver(), tmp_path)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(runner.run()))
    thread.start()
    deadline = time.monotonic() + 10
    while not runner._procs and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    runner.terminate(grace=5)
    thread.join(10)
    assert time.monotonic() - started < 5
    assert result[0].phase == "Failed"
    assert result[0].result("main").exit_code == -15


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/workspace", "/tmp/w"),
        ("/workspace/model", "/tmp/w/model"),
        ("/workspaces", "/workspaces"),
        ("/workspace/run/x", "/tmp/r/x"),
        ("s3://bucket/workspace/x", "s3://bucket/workspace/x"),
        ("/dev/termination-log", "/tmp/t"),
        ("file:///workspace/model", "file:///tmp/w/model"),
        ("file:///elsewhere/model", "file:///elsewhere/model"),
    ],
)
def test_path_rewriting_is_by_whole_segments_longest_first(value, expected):
    from pathlib import Path

    mounts = [
        Mount("/workspace", Path("/tmp/w")),
        Mount("/workspace/run", Path("/tmp/r")),
        Mount("/dev/termination-log", Path("/tmp/t")),
    ]
    assert rewrite(value, mounts) == expected


def test_var_expansion_keeps_unknown_references():
    assert expand("$(A)/$(B)/$$", {"A": "1"}) == "1/$(B)/$"


def test_a_claim_is_the_folder_the_resolver_maps_it_to(tmp_path):
    claim = tmp_path / "claim"
    (claim / "llama").mkdir(parents=True)
    (claim / "llama" / "config.json").write_text("{}")
    volumes = [{"name": "m", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}]
    container = {
        "name": "main",
        **py("import sys, os; print(sorted(os.listdir(sys.argv[1])))"),
        "args": ["/workspace/model"],
        "volumeMounts": [
            {"name": "m", "mountPath": "/workspace/model", "subPath": "llama", "readOnly": True}
        ],
    }
    pod = make_pod([], [container], volumes)
    outcome = PodRunner(pod, MapResolver(claims={"models": claim}), tmp_path / "run").run()
    assert outcome.result("main").log.read_text().strip() == "['config.json']"
    missing = PodRunner(pod, MapResolver(), tmp_path / "run2").run()
    assert missing.phase == "Failed"
    assert 'persistentvolumeclaim "models" not found' in missing.results[0].message
