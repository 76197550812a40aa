"""Per-job identity: the pod may patch its own FineTuneJob's status, nothing else.

Why a ServiceAccount per job rather than one shared account: RBAC's
``resourceNames`` then confines each pod to the one object it reports on, and
ownership makes the three objects disappear with the FineTuneJob.
"""

from __future__ import annotations

from typing import Any

from tuneforge.api.base import GROUP
from tuneforge.api.finetunejob import KIND, PLURAL, FineTuneJob
from tuneforge.operator import names


def build_rbac(ftj: FineTuneJob) -> list[dict[str, Any]]:
    meta = ftj.metadata
    child = names.child_name(meta.name)
    common = {
        "namespace": meta.namespace,
        "labels": names.labels(meta.name, "reporter"),
        "ownerReferences": [names.owner_reference(KIND, meta.name, meta.uid or "")],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": child, **common},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": child, **common},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": [f"{PLURAL}/status"],
                    "resourceNames": [meta.name],
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": child, **common},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": child},
            "subjects": [{"kind": "ServiceAccount", "name": child, "namespace": meta.namespace}],
        },
    ]
