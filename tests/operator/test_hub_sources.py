"""hf:// and https:// sources: accepted by the operator, and the fetch steps get the revision and token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support.manifests import BASE, merge

from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.operator.builders import build_job
from tuneforge.operator.config import OperatorConfig
from tuneforge.operator.plan import Plan, Refusal, plan

CONFIG = OperatorConfig(image="registry.example/tuneforge:test")


MakeFtj = Callable[..., FineTuneJob]


def _init_containers(job: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c for c in job["spec"]["template"]["spec"]["initContainers"]}


def test_an_hf_model_at_a_revision_is_fetched_at_that_revision_with_the_token(make_ftj: MakeFtj) -> None:
    job = build_job(
        make_ftj(
            model={"source": "hf://Qwen/Qwen2.5-0.5B", "revision": "v1.0", "tokenSecretRef": {"name": "hf"}},
            dataset={"source": "hf://datasets/org/chats", "tokenSecretRef": {"name": "hf-data", "key": "t"}},
        ),
        CONFIG,
    )
    fetches = _init_containers(job)
    assert fetches["fetch-model"]["args"] == [
        "fetch",
        "--revision",
        "v1.0",
        "hf://Qwen/Qwen2.5-0.5B",
        "/workspace/model",
    ]
    assert fetches["fetch-dataset"]["args"] == ["fetch", "hf://datasets/org/chats", "/workspace/dataset"]
    model_env = {e["name"]: e for e in fetches["fetch-model"]["env"]}
    assert model_env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    }
    data_env = {e["name"]: e for e in fetches["fetch-dataset"]["env"]}
    assert data_env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-data", "key": "t"}


def test_no_revision_no_flag(make_ftj: MakeFtj) -> None:
    job = build_job(make_ftj(model={"source": "hf://org/model"}), CONFIG)
    assert _init_containers(job)["fetch-model"]["args"] == ["fetch", "hf://org/model", "/workspace/model"]


def test_hf_and_https_sources_are_planned_and_a_revision_elsewhere_is_refused() -> None:
    hub = merge(
        BASE,
        {
            "spec": {
                "model": {"source": "hf://org/model", "revision": "main"},
                "dataset": {"source": "https://example.com/train.jsonl", "evalSource": "hf://datasets/org/d"},
            }
        },
    )
    assert isinstance(plan(hub, OperatorConfig()), Plan)
    got = plan(
        merge(BASE, {"spec": {"model": {"source": "s3://models/tiny", "revision": "v1"}}}), OperatorConfig()
    )
    assert isinstance(got, Refusal) and got.reason == "NotSupportedYet"
    assert "spec.model.revision is not supported yet (it applies to hf:// sources only)" in got.message
