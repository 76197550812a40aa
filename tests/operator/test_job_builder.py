"""The Job, ConfigMap and RBAC the operator builds for a FineTuneJob."""

from __future__ import annotations

import json

import yaml
from support.pss import violations

from tuneforge import exitcodes
from tuneforge.operator.builders import build_children, build_job, build_rbac, build_spec_configmap
from tuneforge.operator.config import OperatorConfig, from_env

CONFIG = OperatorConfig(image="registry.example/tuneforge:test")


def containers(job):
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def test_job_fetches_then_trains_with_the_spec_mounted(make_ftj):
    job = build_job(make_ftj(), CONFIG)
    spec = job["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["fetch-model", "fetch-dataset"]
    assert [c["name"] for c in spec["containers"]] == ["trainer"]
    by_name = containers(job)
    assert by_name["fetch-model"]["command"] + by_name["fetch-model"]["args"] == [
        "tuneforge",
        "fetch",
        "s3://models/tiny",
        "/workspace/model",
    ]
    assert by_name["fetch-dataset"]["args"] == ["fetch", "s3://data/train.jsonl", "/workspace/dataset"]
    trainer = by_name["trainer"]
    assert trainer["args"][:3] == ["train", "--spec", "/etc/tuneforge/spec.yaml"]
    mounts = {m["mountPath"]: m["name"] for m in trainer["volumeMounts"]}
    assert mounts["/workspace"] == "workspace"
    assert mounts["/etc/tuneforge"] == "spec"
    assert mounts["/dev/shm"] == "dshm"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["spec"]["configMap"]["name"] == "demo-spec"
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert all(c["image"] == "registry.example/tuneforge:test" for c in by_name.values())


def test_only_the_trainer_holds_the_api_token(make_ftj):
    job = build_job(make_ftj(), CONFIG)
    spec = job["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == "demo"
    for name, container in containers(job).items():
        holds = any(m["name"] == "api-access" for m in container["volumeMounts"])
        assert holds == (name == "trainer"), name


def test_pods_meet_the_restricted_pod_security_standard(make_ftj):
    ftj = make_ftj(
        storage={"gcs": {"credentialsSecret": "gcs-key"}, "s3": {"credentialsSecret": "s3"}},
        resources={"gpus": 1, "spot": True, "gpuType": "NVIDIA-L4"},
    )
    assert violations(build_job(ftj, CONFIG)["spec"]["template"]["spec"]) == []


def test_the_checker_itself_catches_a_privileged_pod(make_ftj):
    spec = build_job(make_ftj(), CONFIG)["spec"]["template"]["spec"]
    spec["containers"][0]["securityContext"] = {"privileged": True}
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    found = violations(spec)
    assert any("privileged" in v for v in found)
    assert any("hostPath" in v for v in found)


def test_secrets_enter_only_as_references(make_ftj):
    ftj = make_ftj(
        model={"source": "s3://models/tiny", "tokenSecretRef": {"name": "hf", "key": "token"}},
        storage={
            "s3": {"endpoint": "http://minio:9000", "region": "eu-west-1", "credentialsSecret": "s3-creds"},
            "gcs": {"credentialsSecret": "gcs-key"},
        },
    )
    job = build_job(ftj, CONFIG)
    for container in containers(job).values():
        env = env_of(container)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": name}
            assert "value" not in env[name]
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"
        assert env["GOOGLE_APPLICATION_CREDENTIALS"]["value"] == "/var/run/secrets/tuneforge/gcs/key.json"
    assert env_of(containers(job)["fetch-model"])["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "hf"
    assert "HF_TOKEN" not in env_of(containers(job)["trainer"])
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["gcs-credentials"]["secret"]["secretName"] == "gcs-key"
    # No value anywhere in the Job or ConfigMap looks like it came out of a Secret.
    everything = json.dumps([job, build_spec_configmap(ftj)])
    assert (
        "secretKeyRef" in everything
        and '"stringData"' not in everything
        and '"data": {"AWS' not in everything
    )


def test_hyperparameters_and_policy_reach_the_job(make_ftj):
    ftj = make_ftj(
        runPolicy={"backoffLimit": 5, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 60},
        resources={"gpus": 1, "cpu": "8", "memory": "32Gi", "nodeSelector": {"pool": "a100"}},
    )
    job = build_job(ftj, CONFIG)
    assert job["spec"]["backoffLimit"] == 5
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert job["spec"]["suspend"] is False
    trainer = containers(job)["trainer"]
    assert trainer["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "a100"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_cpu_runs_ask_for_no_gpu(make_ftj):
    job = build_job(make_ftj(resources={"gpus": 0}), CONFIG)
    assert "nvidia.com/gpu" not in json.dumps(job)


def test_spot_and_gpu_type_use_the_configured_labels(make_ftj):
    config = from_env(
        {
            "TUNEFORGE_GPU_TYPE_LABEL": "cloud.google.com/gke-accelerator",
            "TUNEFORGE_SPOT_NODE_SELECTOR": "karpenter.sh/capacity-type=spot",
            "TUNEFORGE_SPOT_TAINT_KEY": "",
        }
    )
    pod = build_job(make_ftj(resources={"spot": True, "gpuType": "nvidia-l4"}), config)["spec"]["template"][
        "spec"
    ]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "karpenter.sh/capacity-type": "spot",
    }
    assert [t["key"] for t in pod["tolerations"]] == ["nvidia.com/gpu"]


def test_kueue_queue_starts_the_job_suspended_and_labelled(make_ftj):
    job = build_job(make_ftj(runPolicy={"queueName": "team-a"}), CONFIG)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


def test_pod_failure_policy_fails_fast_on_input_errors_and_ignores_disruptions(make_ftj):
    policy = build_job(make_ftj(), CONFIG)["spec"]["podFailurePolicy"]["rules"]
    assert policy[0]["action"] == "FailJob"
    assert set(policy[0]["onExitCodes"]["values"]) == set(exitcodes.NON_RETRYABLE)
    # A preempted trainer exits 143 (128 + SIGTERM) after saving its checkpoint: retried, not counted.
    assert policy[1] == {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [143]}}
    assert exitcodes.PREEMPTED == 143 and exitcodes.PREEMPTED not in exitcodes.NON_RETRYABLE
    assert policy[2] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert build_job(make_ftj(), CONFIG)["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_the_pod_gets_a_grace_period_long_enough_to_upload_a_checkpoint(make_ftj):
    pod = build_job(make_ftj(), CONFIG)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120


def test_everything_is_owned_and_labelled(make_ftj):
    children = build_children(make_ftj(), CONFIG)
    assert [c["kind"] for c in children] == ["ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Job"]
    for child in children:
        owner = child["metadata"]["ownerReferences"][0]
        assert owner == {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "name": "demo",
            "uid": "0000-1111",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "tuneforge"
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert child["metadata"]["namespace"] == "team-a"


def test_the_role_reaches_only_its_own_status(make_ftj):
    role = build_rbac(make_ftj())[1]
    assert role["rules"] == [
        {
            "apiGroups": ["tuneforge.io"],
            "resources": ["finetunejobs/status"],
            "resourceNames": ["demo"],
            "verbs": ["get", "patch"],
        }
    ]


def test_the_configmap_holds_the_defaulted_spec(make_ftj):
    config_map = build_spec_configmap(make_ftj())
    doc = yaml.safe_load(config_map["data"]["spec.yaml"])
    assert doc["kind"] == "FineTuneJob"
    assert doc["metadata"] == {"name": "demo", "namespace": "team-a", "uid": "0000-1111", "generation": 1}
    assert doc["spec"]["hyperparameters"]["learningRate"] == 0.0002
    assert "status" not in doc


def test_eval_source_gets_its_own_fetch(make_ftj):
    job = build_job(
        make_ftj(dataset={"source": "s3://data/t.jsonl", "evalSource": "s3://data/e.jsonl"}), CONFIG
    )
    by_name = containers(job)
    assert by_name["fetch-eval-dataset"]["args"] == ["fetch", "s3://data/e.jsonl", "/workspace/eval-dataset"]
    assert by_name["trainer"]["args"][-2:] == ["--eval-dataset", "/workspace/eval-dataset"]


def test_pvc_sources_are_mounted_read_only_where_the_trainer_reads_and_not_fetched(make_ftj):
    ftj = make_ftj(
        model={"source": "pvc://models/llama/8b"},
        dataset={"source": "pvc://datasets", "evalSource": "s3://data/eval.jsonl"},
    )
    job = build_job(ftj, CONFIG)
    by_name = containers(job)
    assert "fetch-model" not in by_name and "fetch-dataset" not in by_name
    assert "fetch-eval-dataset" in by_name
    mounts = {m["mountPath"]: m for m in by_name["trainer"]["volumeMounts"]}
    assert mounts["/workspace/model"] == {
        "name": "model-pvc",
        "mountPath": "/workspace/model",
        "readOnly": True,
        "subPath": "llama/8b",
    }
    assert mounts["/workspace/dataset"] == {
        "name": "dataset-pvc",
        "mountPath": "/workspace/dataset",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-pvc"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert violations(job["spec"]["template"]["spec"]) == []


def test_a_shared_model_cache_is_mounted_into_fetch_model_only(make_ftj):
    config = OperatorConfig(model_cache_claim="model-cache")
    job = build_job(make_ftj(model={"source": "hf://org/base", "revision": "v1"}), config)
    by_name = containers(job)
    assert by_name["fetch-model"]["args"] == [
        "fetch", "--revision", "v1", "--cache-dir", "/var/cache/tuneforge/models",
        "hf://org/base", "/workspace/model",
    ]  # fmt: skip
    assert {"name": "model-cache", "mountPath": "/var/cache/tuneforge/models"} in by_name["fetch-model"][
        "volumeMounts"
    ]
    for name in ("fetch-dataset", "trainer"):
        assert all(m["name"] != "model-cache" for m in by_name[name]["volumeMounts"])
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"] == {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": "model-cache"},
    }
    # Without the setting, or for a model already on a claim or local, nothing changes.
    assert "--cache-dir" not in containers(build_job(make_ftj(), CONFIG))["fetch-model"]["args"]
    assert "fetch-model" not in containers(build_job(make_ftj(model={"source": "pvc://models/x"}), config))
