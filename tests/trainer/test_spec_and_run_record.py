"""Reading the spec, refusing unsupported fields, and the pure parts of the run record."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuneforge.capabilities import unsupported_training
from tuneforge.trainer.errors import InvalidSpec, NotSupportedYet
from tuneforge.trainer.metrics import eval_metrics, final_metrics, perplexity
from tuneforge.trainer.runrecord import REDACTED, config_json, join_uri, metrics_jsonl, output_uris, redact
from tuneforge.trainer.spec import check_supported, load_spec, parse_spec, unsupported_fields

BASE: dict[str, Any] = {
    "apiVersion": "tuneforge.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "demo", "namespace": "team-a", "uid": "u-1"},
    "spec": {
        "model": {"source": "hf://org/model"},
        "dataset": {"source": "s3://bucket/data.jsonl"},
        "output": {"uri": "s3://bucket/out"},
    },
}


def manifest(**spec: Any) -> dict[str, Any]:
    return {**BASE, "spec": {**BASE["spec"], **spec}}


def test_spec_file_is_validated_with_the_api_models(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(manifest(hyperparameters={"loraRank": 8})))
    job = load_spec(path)
    assert (job.metadata.namespace, job.metadata.name, job.spec.hyperparameters.lora_rank) == (
        "team-a",
        "demo",
        8,
    )


def test_invalid_spec_names_the_field(tmp_path: Path) -> None:
    text = yaml.safe_dump(manifest(hyperparameters={"loraRank": 0, "batchSize": "many"}))
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(text, source="spec.yaml")
    assert caught.value.message.startswith("spec.yaml: not a valid FineTuneJob: ")
    assert (
        "spec.hyperparameters.loraRank: Input should be greater than or equal to 1 (got 0)"
        in caught.value.message
    )
    assert "spec.hyperparameters.batchSize" in caught.value.message


def test_spec_that_is_not_yaml_or_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="not valid YAML"):
        parse_spec("a: [b", source="s.yaml")
    with pytest.raises(InvalidSpec, match="expected a FineTuneJob object, got list"):
        parse_spec("- 1\n", source="s.yaml")
    with pytest.raises(InvalidSpec, match="cannot read the spec file"):
        load_spec(tmp_path / "absent.yaml")


def test_what_this_trainer_supports_passes() -> None:
    job = parse_spec(yaml.safe_dump(manifest(dataset={"source": "s3://bucket/d", "format": "chat"})))
    assert unsupported_fields(job.spec) == []
    check_supported(job.spec)


def test_every_unsupported_field_is_named() -> None:
    job = parse_spec(
        yaml.safe_dump(
            manifest(
                cleanupPolicy="Delete",
                dataset={"source": "s3://bucket/d", "format": "prompt-completion"},
                resources={"gpus": 2},
                distributed={"gpusPerNode": 4},
            )
        )
    )
    with pytest.raises(NotSupportedYet) as caught:
        check_supported(job.spec)
    # The message is the shared capabilities table's, one clause per field.
    assert caught.value.message == "; ".join(unsupported_training(job.spec))
    for field in (
        "spec.cleanupPolicy Delete",
        "spec.distributed.gpusPerNode",
    ):
        assert field in caught.value.message
    assert "spec.dataset.format" not in caught.value.message  # prompt-completion is built
    assert caught.value.exit_code == 6


def test_secret_looking_keys_are_redacted_at_any_depth() -> None:
    value = {
        "spec": {
            "model": {"source": "hf://o/m", "tokenSecretRef": {"name": "hf", "key": "token"}},
            "tracking": {"wandb": {"project": "p", "apiKeySecretRef": {"name": "wb"}}},
            "storage": {"s3": {"credentialsSecret": "aws", "region": "eu"}},
            "list": [{"password": "hunter2", "keep": 1}, {"api_key": "k"}],
        }
    }
    assert redact(value) == {
        "spec": {
            "model": {"source": "hf://o/m", "tokenSecretRef": REDACTED},
            "tracking": {"wandb": {"project": "p", "apiKeySecretRef": REDACTED}},
            "storage": {"s3": {"credentialsSecret": REDACTED, "region": "eu"}},
            "list": [{"password": REDACTED, "keep": 1}, {"api_key": REDACTED}],
        }
    }


def test_config_json_drops_status_and_redacts() -> None:
    data = json.loads(
        config_json(
            {**manifest(model={"source": "hf://o/m", "tokenSecretRef": {"name": "s"}}), "status": {"x": 1}}
        )
    )
    assert "status" not in data
    assert data["spec"]["model"] == {"source": "hf://o/m", "tokenSecretRef": REDACTED}


def test_uris() -> None:
    assert join_uri("s3://b/out/", "run", "status.json") == "s3://b/out/run/status.json"
    assert output_uris("file:///tmp/o") == {
        "adapter": "file:///tmp/o/adapter",
        "model": "file:///tmp/o/model",
        "runRecord": "file:///tmp/o/run",
    }


def test_metrics_jsonl_writes_diverged_values_as_null() -> None:
    lines = metrics_jsonl(
        [{"loss": float("nan"), "step": 1}, {"loss": 2.5, "grad_norm": math.inf, "step": 2}]
    )
    assert [json.loads(line) for line in lines.splitlines()] == [
        {"loss": None, "step": 1},
        {"loss": 2.5, "grad_norm": None, "step": 2},
    ]


def test_metrics_from_the_log_history() -> None:
    history = [
        {"loss": 3.0, "num_tokens": 100.0, "step": 1},
        {"eval_loss": 2.0, "eval_mean_token_accuracy": 0.25, "eval_runtime": 0.5, "step": 1},
        {"loss": 2.0, "num_tokens": 400.0, "step": 2},
        {"train_runtime": 2.0, "train_loss": 2.5, "step": 2},
    ]
    got = final_metrics(
        history, {"train_loss": 2.5, "train_runtime": 2.0}, train_samples=10, truncated_samples=1
    )
    assert got == {
        "trainSamples": 10,
        "truncatedSamples": 1,
        "trainLoss": 2.5,
        "trainRuntimeSeconds": 2.0,
        "finalLoss": 2.0,
        "tokensPerSecond": 200.0,
        "evalLoss": 2.0,
        "perplexity": pytest.approx(math.exp(2.0)),
        "meanTokenAccuracy": 0.25,
        "evalRuntimeSeconds": 0.5,
    }
    assert perplexity(800.0) is None and perplexity(None) is None
    assert eval_metrics({"eval_loss": float("nan"), "eval_runtime": 1.0}) == {"evalRuntimeSeconds": 1.0}
