"""Names and labels of everything the operator creates for a resource."""

from __future__ import annotations

import hashlib
from typing import Any

from tuneforge.api.base import API_VERSION

MANAGED_BY = "tuneforge"
LABEL_FINETUNEJOB = "tuneforge.io/finetunejob"
LABEL_MODELEXPORT = "tuneforge.io/modelexport"
LABEL_COMPONENT = "app.kubernetes.io/component"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SPEC_KEY = "spec.yaml"
EXPORT_SPEC_KEY = "export.yaml"
MAX_NAME = 52
EXPORT_SUFFIX = "-export"


def _fit(name: str) -> str:
    """``name`` if it fits MAX_NAME, else shortened with a hash so it stays unique."""
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}"


def child_name(name: str) -> str:
    """The Job/ServiceAccount/Role name for a FineTuneJob: its own name.

    The CRD caps names at 52 characters so that the ``-spec`` suffix and the
    pods' generated suffixes still fit Kubernetes' 63; a longer name (only
    possible if the CRD was bypassed) is shortened with a hash to stay unique.
    """
    return _fit(name)


def export_child_name(name: str) -> str:
    """The Job/ServiceAccount/Role name for a ModelExport: ``<name>-export``.

    The suffix keeps it apart from a FineTuneJob of the same name.
    """
    return _fit(name + EXPORT_SUFFIX)


def configmap_name(name: str) -> str:
    return f"{child_name(name)}-spec"


def export_configmap_name(name: str) -> str:
    return f"{export_child_name(name)}-spec"


def label_value(name: str) -> str:
    """A resource name as a label value (at most 63 characters)."""
    if len(name) <= 63:
        return name
    return name[:54] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]


def labels(name: str, component: str, *, owner_label: str = LABEL_FINETUNEJOB) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "tuneforge",
        "app.kubernetes.io/instance": label_value(name),
        LABEL_COMPONENT: component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "tuneforge",
        owner_label: label_value(name),
    }


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
