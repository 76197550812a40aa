"""Per-run identity: the pod may patch its own resource's status, nothing else.

Why a ServiceAccount per run rather than one shared account: RBAC's
``resourceNames`` then confines each pod to the one object it reports on, and
ownership makes the three objects disappear with that resource.
"""

from __future__ import annotations

from typing import Any

from tuneforge.api.base import GROUP
from tuneforge.api.finetunejob import KIND, PLURAL, FineTuneJob
from tuneforge.operator import names


def build_rbac(ftj: FineTuneJob) -> list[dict[str, Any]]:
    meta = ftj.metadata
    return reporter_rbac(
        kind=KIND,
        plural=PLURAL,
        name=meta.name,
        namespace=meta.namespace or "default",
        uid=meta.uid or "",
        account=names.child_name(meta.name),
        labels=names.labels(meta.name, "reporter"),
    )


def reporter_rbac(
    *, kind: str, plural: str, name: str, namespace: str, uid: str, account: str, labels: dict[str, str]
) -> list[dict[str, Any]]:
    """ServiceAccount, Role (get/patch on ``<plural>/status`` of ``name`` only) and RoleBinding."""
    common = {
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [names.owner_reference(kind, name, uid)],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, **common},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": account, **common},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": [f"{plural}/status"],
                    "resourceNames": [name],
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account, **common},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    ]
