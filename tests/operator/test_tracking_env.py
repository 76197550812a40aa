"""The W&B API key reaches the trainer, and only the trainer, as a secretKeyRef."""

from __future__ import annotations

import json

from tuneforge.operator.builders import build_job, build_spec_configmap
from tuneforge.operator.builders.env import secret_fields, tracking_env
from tuneforge.operator.config import OperatorConfig

CONFIG = OperatorConfig(image="registry.example/tuneforge:test")
WANDB = {
    "wandb": {"project": "llm", "entity": "team", "apiKeySecretRef": {"name": "wandb", "key": "api-key"}}
}


def containers(job):
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def test_the_trainer_gets_the_wandb_key_from_the_named_secret(make_ftj):
    job = build_job(make_ftj(tracking=WANDB), CONFIG)
    by_name = containers(job)
    trainer_env = {e["name"]: e for e in by_name["trainer"]["env"]}
    assert trainer_env["WANDB_API_KEY"] == {
        "name": "WANDB_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}},
    }
    # The fetch steps, which run user-supplied URIs, never hold it.
    for name in ("fetch-model", "fetch-dataset"):
        assert all(e["name"] != "WANDB_API_KEY" for e in by_name[name]["env"]), name


def test_the_key_defaults_to_the_token_key_and_is_absent_without_tracking(make_ftj):
    ftj = make_ftj(tracking={"wandb": {"project": "llm", "apiKeySecretRef": {"name": "wandb"}}})
    assert tracking_env(ftj.spec) == [
        {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "token"}}}
    ]
    assert tracking_env(make_ftj().spec) == []
    assert tracking_env(make_ftj(tracking={}).spec) == []
    env = containers(build_job(make_ftj(), CONFIG))["trainer"]["env"]
    assert all(e["name"] != "WANDB_API_KEY" for e in env)


def test_a_missing_wandb_secret_points_at_its_field(make_ftj):
    assert secret_fields(make_ftj(tracking=WANDB).spec)["wandb"] == "spec.tracking.wandb.apiKeySecretRef"


def test_the_key_is_referenced_never_inlined(make_ftj):
    ftj = make_ftj(tracking=WANDB)
    job = build_job(ftj, CONFIG)
    entries = [e for c in containers(job).values() for e in c["env"] if e["name"] == "WANDB_API_KEY"]
    assert len(entries) == 1 and "value" not in entries[0]
    # The ConfigMap carries the spec, which names the Secret and its key, nothing more.
    configmap_text = json.dumps(build_spec_configmap(ftj))
    assert "apiKeySecretRef" in configmap_text and "WANDB_API_KEY" not in configmap_text
