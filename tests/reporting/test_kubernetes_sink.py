"""The Kubernetes sink against the emulated API server with the generated CRD: what a trainer pod does.

The sink runs with the environment a pod has (service host/port, a service-account folder holding the
token and the cluster CA) and merge-patches the FineTuneJob's status subresource.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tuneforge.reporting import KubernetesSink, Reporter, reporter_from_env, status_url

FTJ = ("tuneforge.io/v1alpha1", "finetunejobs")
NAMESPACE, NAME = "default", "tiny"


@pytest.fixture
def ftj(kube_api: Any) -> dict[str, Any]:
    kube_api.load_crds()
    return kube_api.client.create(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {
                "model": {"source": "s3://models/tiny"},
                "dataset": {"source": "s3://data/train.jsonl"},
                "output": {"uri": "s3://out/runs/tiny"},
            },
        }
    )


@pytest.fixture
def pod_env(kube_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The service-account folder and variables a trainer pod gets."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(kube_api.token)
    shutil.copy(kube_api.ca_path, account / "ca.crt")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", kube_api.host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube_api.port))
    monkeypatch.setenv("TUNEFORGE_SERVICEACCOUNT_DIR", str(account))
    monkeypatch.setenv("TUNEFORGE_STATUS_INTERVAL", "1")
    return account


def status_patches(kube_api: Any) -> list[Any]:
    return [
        r
        for r in list(kube_api.kmock)
        if str(r.method).upper().endswith("PATCH") and r.subresource == "status" and r.name == NAME
    ]


def current_status(kube_api: Any) -> dict[str, Any]:
    status: dict[str, Any] = kube_api.client.get(*FTJ, NAME, NAMESPACE).get("status", {})
    return status


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_status_lands_on_the_finetunejob(
    kube_api: Any, ftj: dict[str, Any], pod_env: Path, tmp_path: Path
) -> None:
    reporter = reporter_from_env(NAMESPACE, NAME, tmp_path / "work")
    assert [type(s).__name__ for s in reporter.sinks] == ["KubernetesSink", "LocalSink"]
    reporter.progress(
        step=10, total_steps=60, epoch=0.5, total_epochs=3.0, loss=2.31, tokens_per_second=1800.0
    )
    reporter.metrics(trainLoss=2.2, evalLoss=2.4, perplexity=11.0, meanTokenAccuracy=0.4, trainSamples=270)
    reporter.artifacts(adapter="s3://out/runs/tiny/adapter", runRecord="s3://out/runs/tiny/run")
    reporter.finish(reason="Succeeded", message="trained 60 steps")

    status = current_status(kube_api)
    progress = status["progress"]
    assert (progress["step"], progress["totalSteps"], progress["percent"]) == (10, 60, 16)
    assert (progress["epoch"], progress["loss"], progress["tokensPerSecond"]) == (0.5, 2.31, 1800.0)
    assert progress["message"] == "Succeeded: trained 60 steps"
    assert status["metrics"] == {
        "trainLoss": 2.2,
        "evalLoss": 2.4,
        "perplexity": 11.0,
        "meanTokenAccuracy": 0.4,
        "trainSamples": 270,
    }
    assert status["artifacts"] == {
        "adapter": "s3://out/runs/tiny/adapter",
        "runRecord": "s3://out/runs/tiny/run",
    }
    # The trainer owns progress/metrics/artifacts; it never writes conditions.
    assert "conditions" not in status or status["conditions"] == ftj.get("status", {}).get("conditions", [])

    patches = status_patches(kube_api)
    assert patches, "no status patch reached the server"
    for request in patches:
        assert request.headers["Content-Type"].startswith("application/merge-patch+json")
        assert request.headers["Authorization"] == f"Bearer {kube_api.token}"
        assert set(request.data) == {"status"}
        assert set(request.data["status"]) <= {"progress", "metrics", "artifacts", "trackingURL"}


def test_updates_are_rate_limited_and_coalesced(
    kube_api: Any, ftj: dict[str, Any], pod_env: Path, tmp_path: Path
) -> None:
    reporter = reporter_from_env(NAMESPACE, NAME, tmp_path / "work")
    (sink,) = [s for s in reporter.sinks if isinstance(s, KubernetesSink)]
    assert sink.interval == 1.0
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 2.5:
        step += 1
        reporter.progress(
            step=step, total_steps=10_000, epoch=None, total_epochs=None, loss=1.0, tokens_per_second=None
        )
        reporter.metrics(trainLoss=1.0 / step)
        time.sleep(0.01)
    assert step > 100
    # At most one patch per second: one at once, then one per elapsed interval.
    assert 2 <= len(status_patches(kube_api)) <= 4
    # The timer sends what is pending when the interval is up, without waiting for another update.
    wait_for(lambda: current_status(kube_api).get("progress", {}).get("step") == step, timeout=3.0)
    assert current_status(kube_api)["metrics"]["trainLoss"] == pytest.approx(1.0 / step)
    before_finish = len(status_patches(kube_api))
    reporter.finish(reason="Succeeded", message="done")  # always flushes, interval or not
    assert len(status_patches(kube_api)) == before_finish + 1
    assert current_status(kube_api)["progress"]["message"] == "Succeeded: done"


def test_a_refused_patch_is_logged_without_the_token_and_never_raised(
    kube_api: Any, ftj: dict[str, Any], pod_env: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = reporter_from_env(NAMESPACE, "not-there", tmp_path / "work")  # the API server answers 404
    with caplog.at_level(logging.WARNING):
        reporter.progress(
            step=1, total_steps=2, epoch=None, total_epochs=None, loss=1.0, tokens_per_second=None
        )
        reporter.finish(reason="Succeeded", message="done")
    (sink,) = [s for s in reporter.sinks if isinstance(s, KubernetesSink)]
    # One or two attempts: the first update may still be pending when finish() coalesces it.
    assert sink.patches_sent == 0 and sink.patches_failed in (1, 2)
    assert "status patch to https://" in caplog.text and "HTTP 404" in caplog.text
    assert kube_api.token not in caplog.text
    assert (
        json.loads((tmp_path / "work" / "status.json").read_text())["progress"]["message"]
        == "Succeeded: done"
    )


def test_an_unreachable_api_server_never_fails_training(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "token").write_text("t")
    sink = KubernetesSink(
        status_url("127.0.0.1", 1, NAMESPACE, NAME),
        token_path=tmp_path / "token",
        ca_path=tmp_path / "ca.crt",
    )
    reporter = Reporter([sink])
    with caplog.at_level(logging.WARNING):
        reporter.progress(
            step=1, total_steps=2, epoch=None, total_epochs=None, loss=1.0, tokens_per_second=None
        )
        reporter.finish(reason="Failed", message="x")
    assert sink.patches_failed in (1, 2)
    assert "ConnectError" in caplog.text and "cannot load the cluster CA" in caplog.text


def test_status_url() -> None:
    assert status_url("10.0.0.1", 443, "team-a", "job") == (
        "https://10.0.0.1:443/apis/tuneforge.io/v1alpha1/namespaces/team-a/finetunejobs/job/status"
    )
    assert status_url("fd00::1", "6443", "ns", "j").startswith("https://[fd00::1]:6443/apis/")
