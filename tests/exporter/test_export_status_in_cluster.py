"""In a pod, ``tuneforge export`` patches its ModelExport's status.artifacts (validated against the CRD)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

MEX = ("tuneforge.io/v1alpha1", "modelexports")


def test_artifacts_land_on_the_modelexport_status(
    kube_api: Any,
    tiny_model: Path,
    tiny_adapter: Path,
    export_run: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = {
        "source": {"adapter": tiny_adapter.as_uri(), "baseModel": tiny_model.as_uri()},
        "format": "merged",
        "destinations": [{"uri": (tmp_path / "a").as_uri()}, {"uri": (tmp_path / "b").as_uri()}],
    }
    kube_api.load_crds()
    kube_api.client.create(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "ModelExport",
            "metadata": {"name": "tiny-export", "namespace": "tests"},
            "spec": spec,
        }
    )
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(kube_api.token)
    shutil.copy(kube_api.ca_path, account / "ca.crt")
    pod = {
        "KUBERNETES_SERVICE_HOST": kube_api.host,
        "KUBERNETES_SERVICE_PORT": str(kube_api.port),
        "TUNEFORGE_SERVICEACCOUNT_DIR": str(account),
    }

    run = export_run(spec, env=pod)
    assert run.exit_code == 0, run.termination
    status = kube_api.client.get(*MEX, "tiny-export", "tests").get("status", {})
    assert status["artifacts"] == run.artifacts
    assert [a["uri"] for a in status["artifacts"]] == [(tmp_path / d / "merged").as_uri() for d in ("a", "b")]
    assert all(
        a["bytes"] > 0 and len(a["sha256"]) == 64 and a["digest"].startswith("sha256:") for a in run.artifacts
    )
    assert "progress" not in status  # a ModelExport's status has none
