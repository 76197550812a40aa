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
        cleanupPolicy="Delete",
        trainer="dpo",
        dataset={"source": "hf://org/data", "format": "preference"},
    )
    assert isinstance(got, Refusal) and got.reason == "NotSupportedYet"
    for needle in ("spec.cleanupPolicy Delete is not supported yet (supported: Retain)",):
        assert needle in got.message
    # DPO on preference data is built: not refused.
    assert "spec.trainer" not in got.message and "spec.dataset.format" not in got.message


def test_exports_of_a_full_fine_tune_are_refused_before_training():
    exports = [{"name": "gguf", "format": "gguf", "destinations": [{"uri": "s3://releases/x"}]}]
    got = decide(method="full", exports=exports)
    assert isinstance(got, Refusal) and got.reason == "NotSupportedYet"
    assert "spec.exports with spec.method full is not supported yet" in got.message
    assert isinstance(decide(method="lora", exports=exports), Plan)
