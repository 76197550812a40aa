"""The server as a process-level thing: TLS, token, kubeconfig, threads, kmock recording and reactions."""

from __future__ import annotations

import ssl
import threading
import time

import httpx
import kmock
import pytest
import yaml
from support.kubeapi import KubeApiError, KubeApiServer, KubeClient


def test_tls_is_verified_with_the_servers_own_ca(kube_api):
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{kube_api.url}/version")  # the system trust store does not know this CA
    context = ssl.create_default_context(cafile=str(kube_api.ca_path))
    for host in ("127.0.0.1", "localhost"):
        answer = httpx.get(
            f"https://{host}:{kube_api.port}/version",
            verify=context,
            headers={"Authorization": "Bearer anything"},
        )
        assert answer.status_code == 200


def test_any_bearer_token_is_accepted_and_none_is_401(kube_api):
    context = ssl.create_default_context(cafile=str(kube_api.ca_path))
    assert (
        httpx.get(
            f"{kube_api.url}/api/v1/namespaces",
            verify=context,
            headers={"Authorization": "Bearer someone-else"},
        ).status_code
        == 200
    )
    refused = httpx.get(f"{kube_api.url}/api/v1/namespaces", verify=context)
    assert refused.status_code == 401 and refused.json()["reason"] == "Unauthorized"


def test_the_kubeconfig_points_at_the_server(kube_api):
    config = yaml.safe_load(kube_api.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube_api.url
    assert config["users"][0]["user"]["token"] == kube_api.token
    assert config["contexts"][0]["context"]["namespace"] == "default"


def test_the_kubernetes_client_library_works_against_it(kube_api):
    kubernetes = pytest.importorskip("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    with api_client:
        core = kubernetes.client.CoreV1Api(api_client)
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "b"}})
        assert core.read_namespaced_config_map("c", "default").data == {"a": "b"}
        names = [n.metadata.name for n in core.list_namespace().items]
        assert "default" in names


def test_start_is_fast_and_stop_leaves_no_thread(tmp_path):
    threads_before = set(threading.enumerate())
    began = time.monotonic()
    server = KubeApiServer(tmp_path).start()
    assert time.monotonic() - began < 1.0
    server.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    watcher = KubeClient(server.url, server.ca_path, server.token)
    watch = watcher.watch("v1", "configmaps", "default", timeout_seconds=60)
    next(watch)  # a watch still open when the server stops
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 2.0
    assert list(watch) == [], "the open watch ends cleanly"
    watcher.close()
    assert set(threading.enumerate()) == threads_before


def test_requests_are_recorded_as_kmock_requests(kube_api):
    kube_api.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    kube_api.client.get("v1", "configmaps", "c")
    creates = list(kube_api.kmock[kmock.action.CREATE, kmock.resource("v1", "configmaps")])
    assert [(r.namespace, r.data["metadata"]["name"]) for r in creates] == [("default", "c")]
    assert len(list(kube_api.kmock[kmock.action.FETCH, kmock.name("c")])) == 1


def test_kmock_reactions_inject_faults(kube_api):
    kube_api.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    (
        kube_api.kmock[kmock.action.FETCH, kmock.name("c")]
        << 503
        << {"kind": "Status", "code": 503, "reason": "ServiceUnavailable"}
    )
    with pytest.raises(KubeApiError) as e:
        kube_api.client.get("v1", "configmaps", "c")
    assert e.value.status == 503
    assert kube_api.client.list("v1", "configmaps", "default")[0]["metadata"]["name"] == "c", (
        "others pass through"
    )


def test_internal_errors_are_recorded(kube_api):
    kube_api.call(lambda: setattr(kube_api.api, "get", None))  # break the server on purpose
    with pytest.raises(KubeApiError) as e:
        kube_api.client.get("v1", "configmaps", "c")
    assert (e.value.status, e.value.reason) == (500, "InternalError")
    assert len(kube_api.internal_errors) == 1
    kube_api.handler.internal_errors.clear()  # this one was intended; the fixture must not fail the test
