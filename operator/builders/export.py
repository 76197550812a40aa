"""The Job that runs a ModelExport: one container, ``tuneforge export``.

The exporter fetches the adapter and base model itself rather than in init
containers: it first checks whether every destination already holds the
artifact (same digest) and then skips the download entirely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from tuneforge.api.finetunejob import Storage
from tuneforge.api.modelexport import KIND, PLURAL, ModelExport
from tuneforge.operator import names
from tuneforge.operator.builders import env as E
from tuneforge.operator.builders.job import RESTRICTED_POD, _container, pod_failure_policy
from tuneforge.operator.builders.pvc import is_pvc, parse_pvc_uri
from tuneforge.operator.builders.rbac import reporter_rbac
from tuneforge.operator.config import OperatorConfig

EXPORTER = "exporter"
EXPORT_DIR = f"{E.WORKSPACE}/export"
HUB_TOKEN_ENV = "HF_TOKEN_DESTINATION_{index}"
"""Env var holding the write token of the Hub destination at spec.destinations[index]."""
BACKOFF_LIMIT = 2


@dataclass(frozen=True)
class ResolvedSource:
    """What the export reads: an adapter and its base model, resolved by the operator."""

    adapter: str
    base_model: str
    base_revision: str | None = None
    token_secret: tuple[str, str] | None = None
    """(Secret name, key) of a token that reads the base model."""
    storage: Storage | None = None
    """Endpoints and credentials of the stores involved."""
    fine_tune_job: str | None = None


def spec_document(export: ModelExport) -> dict[str, Any]:
    meta = export.metadata
    metadata: dict[str, Any] = {k: v for k, v in (("name", meta.name), ("namespace", meta.namespace)) if v}
    if meta.uid:
        metadata["uid"] = meta.uid
    return {
        "apiVersion": export.api_version,
        "kind": export.kind,
        "metadata": metadata,
        "spec": export.spec.wire(),
    }


def _common(export: ModelExport, component: str) -> dict[str, Any]:
    meta = export.metadata
    return {
        "namespace": meta.namespace,
        "labels": names.labels(meta.name, component, owner_label=names.LABEL_MODELEXPORT),
        "ownerReferences": [names.owner_reference(KIND, meta.name, meta.uid or "")],
    }


def build_export_configmap(export: ModelExport) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": names.export_configmap_name(export.metadata.name), **_common(export, "spec")},
        "data": {names.EXPORT_SPEC_KEY: yaml.safe_dump(spec_document(export), sort_keys=False)},
    }


def _env(export: ModelExport, source: ResolvedSource) -> list[dict[str, Any]]:
    storage = export.spec.storage or source.storage
    env = E.base_env()
    if storage is not None:
        env += E.storage_env_for(storage)
    env.append({"name": "TUNEFORGE_SERVICEACCOUNT_DIR", "value": E.SERVICEACCOUNT_DIR})
    if source.token_secret:
        name, key = source.token_secret
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    for index, destination in enumerate(export.spec.destinations):
        if destination.huggingface:
            ref = destination.huggingface.token_secret_ref
            env.append(
                {
                    "name": HUB_TOKEN_ENV.format(index=index),
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
                }
            )
    return env


SOURCES_DIR = "/sources"
"""Where pvc:// sources of an export are mounted, read-only."""


def _claim_mounts(source: ResolvedSource) -> list[tuple[str, str, str, str]]:
    """(role, claim, path in the claim, mount path) of each pvc:// source."""
    mounts = []
    for role, uri in (("adapter", source.adapter), ("base-model", source.base_model)):
        if is_pvc(uri):
            claim, path = parse_pvc_uri(uri)
            mounts.append((role, claim, path, f"{SOURCES_DIR}/{role}"))
    return mounts


def _args(export: ModelExport, source: ResolvedSource) -> list[str]:
    mounted = {role: f"file://{mount_path}" for role, _, _, mount_path in _claim_mounts(source)}
    args = [
        "export",
        "--spec",
        f"{E.SPEC_DIR}/{names.EXPORT_SPEC_KEY}",
        "--adapter-uri",
        mounted.get("adapter", source.adapter),
        "--base-model-uri",
        mounted.get("base-model", source.base_model),
        "--workdir",
        EXPORT_DIR,
    ]
    if source.base_revision:
        args += ["--base-revision", source.base_revision]
    return args


def build_export_job(export: ModelExport, source: ResolvedSource, config: OperatorConfig) -> dict[str, Any]:
    meta = export.metadata
    storage = export.spec.storage or source.storage
    cred_volumes, cred_mounts = E.credential_volumes_for(storage)
    claim_volumes, claim_mounts = [], []
    for role, claim, path, mount_path in _claim_mounts(source):
        claim_volumes.append(
            {"name": f"{role}-pvc", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mount: dict[str, Any] = {"name": f"{role}-pvc", "mountPath": mount_path, "readOnly": True}
        if path:
            mount["subPath"] = path
        claim_mounts.append(mount)
    res = export.spec.resources
    limits = {k: v for k, v in (("cpu", res.cpu), ("memory", res.memory)) if v}
    container = _container(
        EXPORTER,
        _args(export, source),
        config,
        env=_env(export, source),
        resources={"requests": dict(limits), "limits": dict(limits)} if limits else {},
        volumeMounts=[
            {"name": "workspace", "mountPath": E.WORKSPACE},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "spec", "mountPath": E.SPEC_DIR, "readOnly": True},
            {"name": "api-access", "mountPath": E.SERVICEACCOUNT_DIR, "readOnly": True},
            *cred_mounts,
            *claim_mounts,
        ],
    )
    pod_spec = {
        "restartPolicy": "Never",
        "serviceAccountName": names.export_child_name(meta.name),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": dict(RESTRICTED_POD),
        "containers": [container],
        "volumes": [
            {"name": "workspace", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "spec",
                "configMap": {
                    "name": names.export_configmap_name(meta.name),
                    "items": [{"key": names.EXPORT_SPEC_KEY, "path": names.EXPORT_SPEC_KEY}],
                },
            },
            E.api_access_volume(),
            *cred_volumes,
            *claim_volumes,
        ],
    }
    job_labels = names.labels(meta.name, EXPORTER, owner_label=names.LABEL_MODELEXPORT)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": names.export_child_name(meta.name), **_common(export, EXPORTER)},
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            # Conversion has its own timeout; the Job's deadline backs it up.
            "activeDeadlineSeconds": export.spec.timeout_seconds * 2 + 3600,
            "podFailurePolicy": pod_failure_policy(),
            "template": {"metadata": {"labels": job_labels}, "spec": pod_spec},
        },
    }


def build_export_children(
    export: ModelExport, source: ResolvedSource, config: OperatorConfig
) -> list[dict[str, Any]]:
    meta = export.metadata
    rbac = reporter_rbac(
        kind=KIND,
        plural=PLURAL,
        name=meta.name,
        namespace=meta.namespace or "default",
        uid=meta.uid or "",
        account=names.export_child_name(meta.name),
        labels=names.labels(meta.name, "reporter", owner_label=names.LABEL_MODELEXPORT),
    )
    return [build_export_configmap(export), *rbac, build_export_job(export, source, config)]
