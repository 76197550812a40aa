"""Names and labels of everything the operator creates for a resource."""

from __future__ import annotations

import hashlib
from typing import Any

from tuneforge.api.base import API_VERSION

MANAGED_BY = "tuneforge"
LABEL_FINETUNEJOB = "tuneforge.io/finetunejob"
LABEL_COMPONENT = "app.kubernetes.io/component"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
SPEC_KEY = "spec.yaml"
MAX_NAME = 52


def child_name(name: str) -> str:
    """The Job/ServiceAccount/Role name for a resource: the resource's own name.

    The CRD caps names at 52 characters so that the ``-spec`` suffix and the
    pods' generated suffixes still fit Kubernetes' 63; a longer name (only
    possible if the CRD was bypassed) is shortened with a hash to stay unique.
    """
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}"


def configmap_name(name: str) -> str:
    return f"{child_name(name)}-spec"


def labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "tuneforge",
        "app.kubernetes.io/instance": child_name(name),
        LABEL_COMPONENT: component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "tuneforge",
        LABEL_FINETUNEJOB: child_name(name),
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
