"""What the operator refuses to start, and how it says so."""

from __future__ import annotations

from support.manifests import BASE, merge

from tuneforge.operator.config import OperatorConfig
from tuneforge.operator.plan import Plan, Refusal, plan


def decide(**spec):
    return plan(merge(BASE, {"spec": spec}), OperatorConfig())


def test_a_valid_job_gets_a_plan():
    assert isinstance(decide(), Plan)


def test_invalid_spec_names_the_field():
    got = decide(hyperparameters={"learningRate": -1})
    assert isinstance(got, Refusal) and got.reason == "InvalidSpec"
    assert got.message.startswith("spec.hyperparameters.learningRate: Input should be greater than 0")
    assert "re-create" in got.message


def test_features_not_built_yet_are_named_not_ignored():
    got = decide(
        method="qlora",
        trainer="dpo",
        dataset={"source": "hf://org/data", "format": "preference"},
        tracking={"wandb": {"project": "p", "apiKeySecretRef": {"name": "w"}}},
    )
    assert isinstance(got, Refusal) and got.reason == "NotSupportedYet"
    for needle in (
        "spec.method qlora is not supported yet (supported: lora)",
        "spec.trainer dpo",
        "spec.dataset.format preference",
        "spec.dataset.source: hf:// is not supported yet",
        "spec.tracking is not supported yet",
    ):
        assert needle in got.message
