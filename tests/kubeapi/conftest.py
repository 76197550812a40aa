"""Shared pieces of the API-emulation tests: the Widget test CRD and object builders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.kubeapi import KubeApiServer, KubeClient

WIDGETS_CRD = Path(__file__).parent / "data" / "widgets-crd.yaml"
WIDGETS = "test.tuneforge.io/v1"

Factory = Callable[..., dict[str, Any]]


@pytest.fixture
def widgets(kube_api: KubeApiServer) -> KubeClient:
    """The server's client, with the Widget CRD established."""
    kube_api.load_crds([WIDGETS_CRD])
    return kube_api.client


@pytest.fixture
def widget() -> Factory:
    def make(name: str, size: int = 3, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if labels:
            meta["labels"] = labels
        return {"apiVersion": WIDGETS, "kind": "Widget", "metadata": meta, "spec": {"size": size, **spec}}

    return make


@pytest.fixture
def pod() -> Factory:
    def make(
        name: str, labels: dict[str, str] | None = None, owner: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": labels or {}}
        if owner is not None:
            meta["ownerReferences"] = [owner_ref(owner)]
        spec = {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, **extra}

    return make


@pytest.fixture
def job() -> Factory:
    def make(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if owner is not None:
            meta["ownerReferences"] = [owner_ref(owner)]
        template = {"spec": {"containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}}
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": template}}

    return make


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


@pytest.fixture(name="owner_ref")
def owner_ref_fixture() -> Callable[[dict[str, Any]], dict[str, Any]]:
    return owner_ref


@pytest.fixture
def widgets_crd() -> dict[str, Any]:
    """The Widget CRD as a dict (not posted)."""
    crd: dict[str, Any] = yaml.safe_load(WIDGETS_CRD.read_text())
    return crd


@pytest.fixture
def widgets_crd_path() -> Path:
    return WIDGETS_CRD
