"""A real kubectl 1.37 against the emulation: apply, get with printer columns, label, patch status,
wait, delete with finalizers, explain, errors, and the protobuf generator commands."""

from __future__ import annotations

import re
import time

import yaml

WIDGET = """\
apiVersion: test.tuneforge.io/v1
kind: Widget
metadata:
  name: w1
  labels: {team: a}
spec:
  size: 3
"""


def _rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def _established(kubectl, crd_path) -> None:
    assert "created" in kubectl("apply", "-f", str(crd_path)).stdout
    kubectl("wait", "--for", "condition=established", "crd/widgets.test.tuneforge.io", "--timeout=10s")


def test_apply_get_and_reapply_a_custom_resource(kubectl, widgets_crd_path):
    _established(kubectl, widgets_crd_path)
    assert kubectl("apply", "-f", "-", input=WIDGET).stdout == "widget.test.tuneforge.io/w1 created\n"
    for name in ("widgets", "widget", "wdg", "widgets.test.tuneforge.io", "gadgets"):
        header, row = _rows(kubectl("get", name).stdout)
        assert header == ["NAME", "SIZE", "COLOR", "STATE", "AGE"], name
        assert row[:3] == ["w1", "3", "red"] and re.fullmatch(r"\d+s", row[3]), name
    changed = WIDGET.replace("size: 3", "size: 4\n  color: blue")
    assert kubectl("apply", "-f", "-", input=changed).stdout == "widget.test.tuneforge.io/w1 configured\n"
    assert kubectl("apply", "-f", "-", input=changed).stdout == "widget.test.tuneforge.io/w1 unchanged\n"
    obj = yaml.safe_load(kubectl("get", "wdg", "w1", "-o", "yaml").stdout)
    assert obj["spec"] == {"size": 4, "color": "blue"}
    assert obj["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    assert _rows(kubectl("get", "wdg", "-o", "wide").stdout)[0][-1] == "NOTE"


def test_labels_selectors_and_status_patches(kubectl, widgets_crd_path):
    _established(kubectl, widgets_crd_path)
    kubectl("apply", "-f", "-", input=WIDGET)
    kubectl("apply", "-f", "-", input=WIDGET.replace("w1", "w2").replace("team: a", "team: b"))
    kubectl("label", "wdg", "w1", "tier=gold")
    assert _rows(kubectl("get", "wdg", "-l", "tier=gold", "-o", "name").stdout) == [
        ["widget.test.tuneforge.io/w1"]
    ]
    assert _rows(kubectl("get", "wdg", "-l", "team notin (a)", "-o", "name").stdout) == [
        ["widget.test.tuneforge.io/w2"]
    ]
    status = '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Shiny"}]}}'
    kubectl("patch", "wdg", "w1", "--subresource=status", "--type=merge", "-p", status)
    kubectl("wait", "--for=condition=Ready", "wdg/w1", "--timeout=5s")
    assert _rows(kubectl("get", "wdg", "w1").stdout)[1][3] == "Shiny"


def test_delete_waits_for_finalizers(kubectl, kube_api, widgets_crd_path):
    _established(kubectl, widgets_crd_path)
    kubectl("apply", "-f", "-", input=WIDGET.replace("  labels:", "  finalizers: [test/hold]\n  labels:"))
    deleting = kubectl.popen("delete", "wdg", "w1", "--timeout=15s")
    time.sleep(0.5)
    assert deleting.poll() is None, "kubectl delete returned while a finalizer was pending"
    kube_api.client.patch("test.tuneforge.io/v1", "widgets", "w1", {"metadata": {"finalizers": None}})
    out, err = deleting.communicate(timeout=15)
    assert deleting.returncode == 0, err
    assert out == 'widget.test.tuneforge.io "w1" deleted from default namespace\n'
    assert "No resources found" in kubectl("get", "wdg").stderr


def test_explain_prints_the_schema_descriptions(kubectl, widgets_crd_path):
    _established(kubectl, widgets_crd_path)
    out = kubectl("explain", "widgets.spec.size").stdout
    assert "FIELD: size <integer>" in out
    assert "How big the widget is, from 1 to 10." in out
    assert "size\t<integer> -required-" in kubectl("explain", "widgets.spec").stdout


def test_invalid_custom_resources_print_the_servers_message(kubectl, widgets_crd_path):
    _established(kubectl, widgets_crd_path)
    bad = kubectl("apply", "-f", "-", input=WIDGET.replace("size: 3", "size: 30"), check=False)
    assert bad.returncode == 1
    assert bad.stderr == (
        'The Widget "w1" is invalid: spec.size: Invalid value: 30: spec.size in body should be '
        "less than or equal to 10\n"
    )
    unknown = kubectl("apply", "-f", "-", input=WIDGET.replace("size: 3", "size: 3\n  sise: 4"), check=False)
    assert 'strict decoding error: unknown field "spec.sise"' in unknown.stderr


def test_built_in_kinds(kubectl, kube_api):
    assert kubectl("create", "secret", "generic", "creds", "--from-literal=token=abc").returncode == 0
    assert kubectl("get", "secret", "creds", "-o", "jsonpath={.data.token}").stdout == "YWJj"
    kubectl("create", "configmap", "settings", "--from-literal=a=1")
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied}\ndata: {x: one}\n"
    kubectl("apply", "-f", "-", input=manifest)
    assert "configured" in kubectl("apply", "-f", "-", input=manifest.replace("one", "two")).stdout
    assert kube_api.client.get("v1", "configmaps", "applied")["data"] == {"x": "two"}
    assert _rows(kubectl("get", "cm").stdout)[0] == ["NAME", "DATA", "AGE"]
    assert _rows(kubectl("get", "ns", "default").stdout)[1][:2] == ["default", "Active"]


def test_generator_commands_send_protobuf_that_is_understood(kubectl, kube_api):
    kubectl("create", "serviceaccount", "trainer")
    kubectl(
        "create", "role", "status-writer", "--verb=get,patch", "--resource=pods/status", "--resource-name=w1"
    )
    kubectl(
        "create", "rolebinding", "status-writer", "--role=status-writer", "--serviceaccount=default:trainer"
    )
    rbac = "rbac.authorization.k8s.io/v1"
    role = kube_api.client.get(rbac, "roles", "status-writer")
    assert role["rules"] == [
        {"verbs": ["get", "patch"], "apiGroups": [""], "resources": ["pods/status"], "resourceNames": ["w1"]}
    ]
    binding = kube_api.client.get(rbac, "rolebindings", "status-writer")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "trainer", "namespace": "default"}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "status-writer",
    }
    refused = kubectl("create", "job", "j", "--image=busybox", check=False)
    assert refused.returncode == 1 and "protobuf decoding of batch/v1 Job is not supported" in refused.stderr


def test_get_watch_streams_rows(kubectl, kube_api, widgets_crd_path):
    _established(kubectl, widgets_crd_path)
    kubectl("apply", "-f", "-", input=WIDGET)
    watching = kubectl.popen("get", "wdg", "-w", "--request-timeout=2s")
    time.sleep(0.5)
    kube_api.client.patch("test.tuneforge.io/v1", "widgets", "w1", {"spec": {"size": 5}})
    out, _ = watching.communicate(timeout=10)
    assert [row[:2] for row in _rows(out)] == [["NAME", "SIZE"], ["w1", "3"], ["w1", "5"]]
