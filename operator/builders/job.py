"""The batch/v1 Job that fetches, then trains."""

from __future__ import annotations

from typing import Any

from tuneforge import exitcodes
from tuneforge.api.finetunejob import KIND, FineTuneJob, FineTuneJobSpec
from tuneforge.operator import names
from tuneforge.operator.builders import env as E
from tuneforge.operator.builders.distributed import scale_out
from tuneforge.operator.builders.pvc import is_pvc, pvc_mounts, pvc_volumes
from tuneforge.operator.config import OperatorConfig

TRAINER = "trainer"
FETCH_MODEL = "fetch-model"
FETCH_DATASET = "fetch-dataset"
FETCH_EVAL_DATASET = "fetch-eval-dataset"
MODEL_CACHE_DIR = "/var/cache/tuneforge/models"
MODEL_CACHE_SCHEMES = ("hf", "s3", "gs")
# Kubernetes' default is 30 s; a checkpoint of a multi-GB adapter or full model needs longer to upload.
TERMINATION_GRACE_SECONDS = 120

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _mounts(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": "workspace", "mountPath": E.WORKSPACE},
        {"name": "tmp", "mountPath": "/tmp"},
        *extra,
    ]


def _container(name: str, args: list[str], config: OperatorConfig, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["tuneforge"],
        "args": args,
        "securityContext": dict(RESTRICTED_CONTAINER),
        "terminationMessagePath": E.TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        **fields,
    }


def _fetch_containers(spec: FineTuneJobSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    storage_env = E.base_env() + E.storage_env(spec)
    _, cred_mounts = E.credential_volumes(spec)
    requests = {"cpu": config.init_cpu, "memory": config.init_memory}
    fetches = [
        (FETCH_MODEL, spec.model.source, E.MODEL_DIR, E.token_env(spec.model.token_secret_ref)),
        (FETCH_DATASET, spec.dataset.source, E.DATASET_DIR, E.token_env(spec.dataset.token_secret_ref)),
    ]
    if spec.dataset.eval_source:
        fetches.append(
            (
                FETCH_EVAL_DATASET,
                spec.dataset.eval_source,
                E.EVAL_DATASET_DIR,
                E.token_env(spec.dataset.token_secret_ref),
            )
        )
    return [
        _container(
            name,
            ["fetch", *_revision_args(spec, name), *_cache_args(spec, name, config), source, dest],
            config,
            env=storage_env + token,
            volumeMounts=_mounts(*cred_mounts, *_cache_mounts(spec, name, config)),
            resources={"requests": requests, "limits": {"memory": config.init_memory}},
        )
        for name, source, dest, token in fetches
        if not is_pvc(source)  # a claim is mounted, not copied
    ]


def _revision_args(spec: FineTuneJobSpec, container: str) -> list[str]:
    """``--revision`` for the fetch-model step of an hf:// model that names one."""
    revision = spec.model.revision
    if container != FETCH_MODEL or not revision or not spec.model.source.startswith("hf://"):
        return []
    return ["--revision", revision]


def _uses_model_cache(spec: FineTuneJobSpec, config: OperatorConfig) -> bool:
    remote = spec.model.source.split("://", 1)[0] in MODEL_CACHE_SCHEMES
    return bool(config.model_cache_claim) and remote


def _cache_args(spec: FineTuneJobSpec, container: str, config: OperatorConfig) -> list[str]:
    """``--cache-dir`` for fetch-model when the cluster has a shared model cache."""
    if container != FETCH_MODEL or not _uses_model_cache(spec, config):
        return []
    return ["--cache-dir", MODEL_CACHE_DIR]


def _cache_mounts(spec: FineTuneJobSpec, container: str, config: OperatorConfig) -> list[dict[str, Any]]:
    if container != FETCH_MODEL or not _uses_model_cache(spec, config):
        return []
    return [{"name": "model-cache", "mountPath": MODEL_CACHE_DIR}]


def _cache_volumes(spec: FineTuneJobSpec, config: OperatorConfig) -> list[dict[str, Any]]:
    if not _uses_model_cache(spec, config):
        return []
    return [{"name": "model-cache", "persistentVolumeClaim": {"claimName": config.model_cache_claim}}]


def _trainer_resources(spec: FineTuneJobSpec, config: OperatorConfig) -> dict[str, Any]:
    res = spec.resources
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if res.cpu:
        requests["cpu"] = limits["cpu"] = res.cpu
    if res.memory:
        requests["memory"] = limits["memory"] = res.memory
    if res.gpus:
        limits[config.gpu_resource] = str(res.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _trainer_container(spec: FineTuneJobSpec, config: OperatorConfig) -> dict[str, Any]:
    args = [
        "train",
        "--spec",
        f"{E.SPEC_DIR}/{names.SPEC_KEY}",
        "--model",
        E.MODEL_DIR,
        "--dataset",
        E.DATASET_DIR,
        "--workdir",
        E.RUN_DIR,
    ]
    if spec.dataset.eval_source:
        args += ["--eval-dataset", E.EVAL_DATASET_DIR]
    _, cred_mounts = E.credential_volumes(spec)
    env = (
        E.base_env()
        + E.storage_env(spec)
        + E.tracking_env(spec)
        + [{"name": "TUNEFORGE_SERVICEACCOUNT_DIR", "value": E.SERVICEACCOUNT_DIR}]
    )
    return _container(
        TRAINER,
        args,
        config,
        env=env,
        resources=_trainer_resources(spec, config),
        volumeMounts=_mounts(
            {"name": "spec", "mountPath": E.SPEC_DIR, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "api-access", "mountPath": E.SERVICEACCOUNT_DIR, "readOnly": True},
            *cred_mounts,
            *pvc_mounts(spec),
        ),
    )


def _volumes(ftj: FineTuneJob, config: OperatorConfig) -> list[dict[str, Any]]:
    spec = ftj.spec
    cred_volumes, _ = E.credential_volumes(spec)
    return [
        {"name": "workspace", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shared_memory}},
        {
            "name": "spec",
            "configMap": {
                "name": names.configmap_name(ftj.metadata.name),
                "items": [{"key": names.SPEC_KEY, "path": names.SPEC_KEY}],
            },
        },
        # Only the trainer mounts the API token: the fetch steps, which run
        # user-supplied URIs, never hold it.
        E.api_access_volume(),
        *cred_volumes,
        *pvc_volumes(spec),
        *_cache_volumes(spec, config),
    ]


def _scheduling(spec: FineTuneJobSpec, config: OperatorConfig) -> dict[str, Any]:
    res = spec.resources
    selector = dict(res.node_selector)
    tolerations = [t.wire() for t in res.tolerations]
    if res.gpu_type:
        selector[config.gpu_type_label] = res.gpu_type
    if res.gpus:
        tolerations.append({"key": config.gpu_resource, "operator": "Exists", "effect": "NoSchedule"})
    if res.spot:
        selector.update(config.spot_node_selector)
        if config.spot_taint_key:
            tolerations.append({"key": config.spot_taint_key, "operator": "Exists", "effect": "NoSchedule"})
    out: dict[str, Any] = {}
    if selector:
        out["nodeSelector"] = selector
    if tolerations:
        out["tolerations"] = tolerations
    return out


def pod_failure_policy() -> dict[str, Any]:
    """Fail fast where a retry cannot help; never count a disruption.

    A preemption shows either as the DisruptionTarget condition (eviction, scheduler preemption,
    node drain) or only as the exit code SIGTERM leaves (a spot VM's shutdown, a deleted pod);
    the trainer exits PREEMPTED after uploading its checkpoint, and the retry resumes from it.
    """
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"operator": "In", "values": list(exitcodes.NON_RETRYABLE)},
            },
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [exitcodes.PREEMPTED]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def build_pod_spec(ftj: FineTuneJob, config: OperatorConfig) -> dict[str, Any]:
    spec = ftj.spec
    return {
        "restartPolicy": "Never",
        "serviceAccountName": names.child_name(ftj.metadata.name),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": dict(RESTRICTED_POD),
        # Time between SIGTERM and SIGKILL: the trainer saves and uploads a checkpoint in it.
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "initContainers": _fetch_containers(spec, config),
        "containers": [_trainer_container(spec, config)],
        "volumes": _volumes(ftj, config),
        **_scheduling(spec, config),
    }


def build_job(ftj: FineTuneJob, config: OperatorConfig) -> dict[str, Any]:
    meta = ftj.metadata
    policy = ftj.spec.run_policy
    job_labels = names.labels(meta.name, TRAINER)
    if policy.queue_name:
        job_labels[names.KUEUE_QUEUE_LABEL] = policy.queue_name
    job_spec: dict[str, Any] = {
        "backoffLimit": policy.backoff_limit,
        # Kueue admits a queued Job by unsuspending it; it must start suspended.
        "suspend": policy.suspend or bool(policy.queue_name),
        "podFailurePolicy": pod_failure_policy(),
        "template": {
            "metadata": {"labels": names.labels(meta.name, TRAINER)},
            "spec": build_pod_spec(ftj, config),
        },
    }
    if policy.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = policy.active_deadline_seconds
    if policy.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = policy.ttl_seconds_after_finished
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.child_name(meta.name),
            "namespace": meta.namespace,
            "labels": job_labels,
            "ownerReferences": [names.owner_reference(KIND, meta.name, meta.uid or "")],
        },
        "spec": job_spec,
    }
    # Several GPUs or nodes: torchrun launcher, Indexed Job (builders/distributed.py).
    return scale_out(ftj, config, job, TRAINER)
