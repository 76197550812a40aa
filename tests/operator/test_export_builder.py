"""The Job, ConfigMap and RBAC the operator builds for a ModelExport, and how it resolves the source."""

from __future__ import annotations

import json

import pytest
import yaml
from support.manifests import BASE, merge
from support.pss import violations

from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.api.modelexport import ModelExport
from tuneforge.operator.builders.export import ResolvedSource, build_export_children, build_export_job
from tuneforge.operator.config import OperatorConfig
from tuneforge.operator.exports import SourceFailed, Waiting, exports_from_templates, resolve_source

CONFIG = OperatorConfig(image="registry.example/tuneforge:test")


def export(**spec):
    base = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "ModelExport",
        "metadata": {"name": "ship", "namespace": "team-a", "uid": "e-1"},
        "spec": {"source": {"fineTuneJob": "demo"}, "destinations": [{"uri": "s3://releases/ship"}]},
    }
    return ModelExport.model_validate(merge(base, {"spec": spec}))


def ftj_body(status=None, **spec):
    body = merge(BASE, {"spec": spec})
    if status is not None:
        body["status"] = status
    return body


SOURCE = ResolvedSource(
    adapter="s3://out/runs/demo/adapter", base_model="s3://models/tiny", base_revision="v1"
)


def test_one_exporter_container_with_the_resolved_source():
    job = build_export_job(export(format="gguf", quantization="q4_K_M"), SOURCE, CONFIG)
    assert job["metadata"]["name"] == "ship-export"
    pod = job["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    (container,) = pod["containers"]
    assert container["name"] == "exporter"
    assert container["command"] + container["args"] == [
        "tuneforge", "export", "--spec", "/etc/tuneforge/export.yaml",
        "--adapter-uri", "s3://out/runs/demo/adapter", "--base-model-uri", "s3://models/tiny",
        "--workdir", "/workspace/export", "--base-revision", "v1",
    ]  # fmt: skip
    assert job["spec"]["activeDeadlineSeconds"] > 3600
    assert violations(pod) == []


def test_a_base_model_on_a_claim_is_mounted_read_only_and_read_as_a_folder():
    source = ResolvedSource(adapter="s3://out/runs/demo/adapter", base_model="pvc://models/llama/v2")
    job = build_export_job(export(format="merged"), source, CONFIG)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--base-model-uri") + 1] == "file:///sources/base-model"
    assert args[args.index("--adapter-uri") + 1] == "s3://out/runs/demo/adapter"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["base-model-pvc"]["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["base-model-pvc"] == {
        "name": "base-model-pvc",
        "mountPath": "/sources/base-model",
        "readOnly": True,
        "subPath": "llama/v2",
    }
    assert "adapter-pvc" not in volumes
    assert violations(pod) == []


def test_hub_tokens_and_storage_enter_as_secret_references():
    ftj = FineTuneJob.model_validate(
        ftj_body(storage={"s3": {"endpoint": "http://minio:9000", "credentialsSecret": "s3-creds"}})
    )
    source = ResolvedSource(
        adapter="s3://out/a",
        base_model="hf://org/base",
        token_secret=("hf-read", "token"),
        storage=ftj.spec.storage,
    )
    hub = {"huggingface": {"repo": "org/ship", "tokenSecretRef": {"name": "hf-write", "key": "token"}}}
    job = build_export_job(export(destinations=[{"uri": "s3://releases/ship"}, hub]), source, CONFIG)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-read", "key": "token"}
    assert env["HF_TOKEN_DESTINATION_1"]["valueFrom"]["secretKeyRef"] == {"name": "hf-write", "key": "token"}
    assert "HF_TOKEN_DESTINATION_0" not in env
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"


def test_children_are_owned_by_the_export_and_the_role_reaches_only_its_status():
    children = build_export_children(export(), SOURCE, CONFIG)
    assert [c["kind"] for c in children] == ["ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Job"]
    for child in children:
        assert child["metadata"]["ownerReferences"][0]["kind"] == "ModelExport"
        assert child["metadata"]["labels"]["tuneforge.io/modelexport"] == "ship"
    role = children[2]
    assert role["rules"][0]["resources"] == ["modelexports/status"]
    assert role["rules"][0]["resourceNames"] == ["ship"]
    doc = yaml.safe_load(children[0]["data"]["export.yaml"])
    assert doc["kind"] == "ModelExport" and doc["spec"]["format"] == "adapter"


def test_a_direct_source_needs_no_finetunejob():
    direct = export()
    direct.spec.source = direct.spec.source.model_validate(
        {
            "adapter": "s3://out/a",
            "baseModel": "hf://org/base",
            "baseModelRevision": "main",
            "tokenSecretRef": {"name": "hf"},
        }
    )
    got = resolve_source(direct, None)
    assert got == ResolvedSource("s3://out/a", "hf://org/base", "main", ("hf", "token"), None)


@pytest.mark.parametrize(
    ("ftj", "expected", "text"),
    [
        (None, Waiting, "does not exist"),
        (ftj_body(), Waiting, "(now: Pending)"),
        (
            ftj_body({"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Training"}],
                      "progress": {"percent": 40}}),
            Waiting, "(now: Training, 40%)",
        ),
        (
            ftj_body({"conditions": [{"type": "Succeeded", "status": "False", "reason": "OutOfMemory",
                                      "message": "lower batchSize"}]}),
            SourceFailed, "FineTuneJob demo failed (OutOfMemory): lower batchSize",
        ),
        (
            ftj_body({"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}),
            SourceFailed, "recorded no adapter",
        ),
        (
            ftj_body({"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}],
                      "artifacts": {"model": "s3://out/runs/demo/model"}}, method="full"),
            SourceFailed, "is a full fine-tune: its model is at s3://out/runs/demo/model",
        ),
    ],
)  # fmt: skip
def test_waiting_and_failing_sources_say_why(ftj, expected, text):
    got = resolve_source(export(), ftj)
    assert isinstance(got, expected)
    assert text in got.message


def test_a_succeeded_finetunejob_resolves_to_its_adapter_base_and_storage():
    body = ftj_body(
        {"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}],
         "artifacts": {"adapter": "s3://out/runs/demo/adapter"}},
        model={"source": "hf://org/base", "revision": "abc123", "tokenSecretRef": {"name": "hf"}},
        storage={"s3": {"credentialsSecret": "s3-creds"}},
    )  # fmt: skip
    got = resolve_source(export(), body)
    assert isinstance(got, ResolvedSource)
    assert (got.adapter, got.base_model, got.base_revision) == (
        "s3://out/runs/demo/adapter",
        "hf://org/base",
        "abc123",
    )
    assert got.token_secret == ("hf", "token") and got.fine_tune_job == "demo"
    assert got.storage is not None and got.storage.s3 is not None


def test_spec_exports_become_owned_model_exports():
    ftj = FineTuneJob.model_validate(
        ftj_body(
            exports=[
                {"name": "gguf", "format": "gguf", "quantization": "q4_K_M",
                 "destinations": [{"uri": "s3://releases/gguf"}]},
                {"name": "hub",
                 "destinations": [{"huggingface": {"repo": "org/x", "tokenSecretRef": {"name": "w"}}}]},
            ],
            storage={"s3": {"credentialsSecret": "s3-creds"}},
        )
    )  # fmt: skip
    made = exports_from_templates(ftj)
    assert [m["metadata"]["name"] for m in made] == ["demo-gguf", "demo-hub"]
    for manifest in made:
        ModelExport.model_validate(manifest)  # each one is a valid ModelExport
        assert manifest["metadata"]["ownerReferences"][0]["name"] == "demo"
        assert manifest["spec"]["source"] == {"fineTuneJob": "demo"}
        assert manifest["spec"]["storage"] == {"s3": {"credentialsSecret": "s3-creds"}}
    assert made[0]["spec"]["quantization"] == "q4_K_M"
    assert "quantization" not in made[1]["spec"]
    assert "s3-creds" in json.dumps(made) and "AWS_SECRET" not in json.dumps(made)
