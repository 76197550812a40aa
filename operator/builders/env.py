"""Environment and credential volumes for the Job's containers.

Secrets only ever enter as ``secretKeyRef`` env or secret volumes: the Job
spec names them, it never holds their values.
"""

from __future__ import annotations

from typing import Any

from tuneforge.api.base import SecretKeyRef
from tuneforge.api.finetunejob import FineTuneJobSpec, Storage

WORKSPACE = "/workspace"
MODEL_DIR = f"{WORKSPACE}/model"
DATASET_DIR = f"{WORKSPACE}/dataset"
EVAL_DATASET_DIR = f"{WORKSPACE}/eval-dataset"
RUN_DIR = f"{WORKSPACE}/run"
HF_HOME = f"{WORKSPACE}/.cache/huggingface"
SPEC_DIR = "/etc/tuneforge"
TERMINATION_LOG = "/dev/termination-log"
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
GCS_KEY_DIR = "/var/run/secrets/tuneforge/gcs"
GCS_KEY_FILE = "key.json"

S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_SECRET_KEYS = ("AWS_SESSION_TOKEN",)


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def base_env() -> list[dict[str, Any]]:
    """What every container gets: writable HOME, caches and the termination path."""
    return [
        _value("HOME", "/tmp"),
        _value("HF_HOME", HF_HOME),
        _value("PYTHONUNBUFFERED", "1"),
        _value("TUNEFORGE_TERMINATION_MESSAGE_PATH", TERMINATION_LOG),
    ]


def storage_env(spec: FineTuneJobSpec) -> list[dict[str, Any]]:
    """Endpoints and credentials for s3:// and gs:// URIs."""
    return storage_env_for(spec.storage)


def storage_env_for(storage: Storage | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if storage and storage.s3:
        s3 = storage.s3
        if s3.endpoint:
            env.append(_value("AWS_ENDPOINT_URL", s3.endpoint))
        if s3.region:
            env.append(_value("AWS_REGION", s3.region))
        if s3.credentials_secret:
            env += [_secret(k, s3.credentials_secret, k) for k in S3_SECRET_KEYS]
            env += [_secret(k, s3.credentials_secret, k, optional=True) for k in S3_OPTIONAL_SECRET_KEYS]
    if storage and storage.gcs:
        gcs = storage.gcs
        if gcs.endpoint:
            env.append(_value("STORAGE_EMULATOR_HOST", gcs.endpoint))
        if gcs.credentials_secret:
            env.append(_value("GOOGLE_APPLICATION_CREDENTIALS", f"{GCS_KEY_DIR}/{GCS_KEY_FILE}"))
    return env


def token_env(ref: SecretKeyRef | None) -> list[dict[str, Any]]:
    return [_secret("HF_TOKEN", ref.name, ref.key)] if ref else []


def tracking_env(spec: FineTuneJobSpec) -> list[dict[str, Any]]:
    """The W&B API key, for the trainer only; project, entity and tags the trainer reads from the spec."""
    wandb = spec.tracking.wandb if spec.tracking else None
    if wandb is None:
        return []
    return [_secret("WANDB_API_KEY", wandb.api_key_secret_ref.name, wandb.api_key_secret_ref.key)]


def credential_volumes(spec: FineTuneJobSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) for file-shaped credentials."""
    return credential_volumes_for(spec.storage)


def credential_volumes_for(storage: Storage | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    gcs = storage.gcs if storage else None
    if not (gcs and gcs.credentials_secret):
        return [], []
    volume = {
        "name": "gcs-credentials",
        "secret": {
            "secretName": gcs.credentials_secret,
            "items": [{"key": GCS_KEY_FILE, "path": GCS_KEY_FILE}],
            "defaultMode": 0o440,
        },
    }
    return [volume], [{"name": "gcs-credentials", "mountPath": GCS_KEY_DIR, "readOnly": True}]


def api_access_volume() -> dict[str, Any]:
    """The projected service-account token, CA and namespace (mounted by the reporting container only)."""
    return {
        "name": "api-access",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        "optional": True,
                    }
                },
                {
                    "downwardAPI": {
                        "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
            ]
        },
    }


def secret_fields(spec: FineTuneJobSpec) -> dict[str, str]:
    """Which spec field names each Secret, to point a user at the right line."""
    fields: dict[str, str] = {}
    if spec.model.token_secret_ref:
        fields[spec.model.token_secret_ref.name] = "spec.model.tokenSecretRef"
    if spec.dataset.token_secret_ref:
        fields[spec.dataset.token_secret_ref.name] = "spec.dataset.tokenSecretRef"
    if spec.storage and spec.storage.s3 and spec.storage.s3.credentials_secret:
        fields[spec.storage.s3.credentials_secret] = "spec.storage.s3.credentialsSecret"
    if spec.storage and spec.storage.gcs and spec.storage.gcs.credentials_secret:
        fields[spec.storage.gcs.credentials_secret] = "spec.storage.gcs.credentialsSecret"
    if spec.tracking and spec.tracking.wandb:
        fields[spec.tracking.wandb.api_key_secret_ref.name] = "spec.tracking.wandb.apiKeySecretRef"
    return fields
