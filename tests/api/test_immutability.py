"""After creation a FineTuneJob's spec is frozen except runPolicy.suspend and
runPolicy.activeDeadlineSeconds; a ModelExport's spec is frozen entirely.
Transition rules run only on update, only in the API server."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support.kubeapi.admission import validate

from tuneforge.api import FineTuneJob, ModelExport


def ftj() -> dict[str, Any]:
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "frozen", "labels": {"team": "a"}},
        "spec": {
            "model": {"source": "hf://org/model"},
            "dataset": {"source": "s3://datasets/train.jsonl", "evalSplit": 0.1},
            "output": {"uri": "s3://models/out"},
            "checkpoints": {"intervalSteps": 100},
            "runPolicy": {"backoffLimit": 2},
        },
    }


def created(crd: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    stored, errors = validate(crd, "v1alpha1", doc, None, strict=True)
    assert errors == []
    return dict(stored)


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for name in parents:
        doc = doc.setdefault(name, {})
    if value is None:
        doc.pop(leaf)
    else:
        doc[leaf] = value


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("spec.model.source", "hf://org/other-model", "spec.model"),
        ("spec.dataset.format", "alpaca", "spec.dataset"),
        ("spec.output.uri", "s3://models/elsewhere", "spec.output"),
        ("spec.method", "qlora", "spec.method"),
        ("spec.hyperparameters.learningRate", 0.001, "spec.hyperparameters"),
        ("spec.evaluation", {"strategy": "epoch"}, "spec.evaluation"),  # added
        ("spec.checkpoints", None, "spec.checkpoints"),  # removed
        ("spec.resources.gpus", 2, "spec.resources"),
        ("spec.cleanupPolicy", "Delete", "spec.cleanupPolicy"),
        ("spec.runPolicy.backoffLimit", 5, "spec.runPolicy.backoffLimit"),
        ("spec.runPolicy.queueName", "gpu", "spec.runPolicy.queueName"),  # added
    ],
)
def test_changing_an_immutable_field_is_refused_naming_it(
    path: str, value: Any, field: str, committed_crds: dict[str, dict[str, Any]]
) -> None:
    crd = committed_crds["FineTuneJob"]
    old = created(crd, ftj())
    new = copy.deepcopy(old)
    set_path(new, path, value)
    _, errors = validate(crd, "v1alpha1", new, old, strict=True)
    assert [e.field for e in errors] == [field]
    message = errors[0].message()
    assert f"{field} is immutable: create a new FineTuneJob to change it" in message
    assert "only spec.runPolicy.suspend and spec.runPolicy.activeDeadlineSeconds may change" in message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.runPolicy.suspend", True),
        ("spec.runPolicy.activeDeadlineSeconds", 3600),
        ("metadata.labels", {"team": "b"}),
    ],
)
def test_mutable_fields_may_change(path: str, value: Any, committed_crds: dict[str, dict[str, Any]]) -> None:
    crd = committed_crds["FineTuneJob"]
    old = created(crd, ftj())
    new = copy.deepcopy(old)
    set_path(new, path, value)
    stored, errors = validate(crd, "v1alpha1", new, old, strict=True)
    assert errors == []
    if path.startswith("spec."):
        assert stored["spec"]["runPolicy"][path.rsplit(".", 1)[-1]] == value


def test_an_unchanged_resubmission_is_fine_even_without_defaults(
    committed_crds: dict[str, dict[str, Any]],
) -> None:
    # kubectl apply sends the manifest without the server's defaults; the
    # server defaults it again before comparing, so nothing "changed".
    crd = committed_crds["FineTuneJob"]
    old = created(crd, ftj())
    _, errors = validate(crd, "v1alpha1", ftj(), old, strict=True)
    assert errors == []


def test_suspend_and_an_immutable_change_together_reports_only_the_immutable_one(
    committed_crds: dict[str, dict[str, Any]],
) -> None:
    crd = committed_crds["FineTuneJob"]
    old = created(crd, ftj())
    new = copy.deepcopy(old)
    new["spec"]["runPolicy"]["suspend"] = True
    new["spec"]["method"] = "full"
    _, errors = validate(crd, "v1alpha1", new, old, strict=True)
    assert [e.field for e in errors] == ["spec.method"]


def test_a_status_update_cannot_sneak_in_a_spec_change(committed_crds: dict[str, dict[str, Any]]) -> None:
    crd = committed_crds["FineTuneJob"]
    old = created(crd, ftj())
    new = copy.deepcopy(old)
    new["spec"]["method"] = "full"
    new["status"] = {"jobName": "frozen-train"}
    stored, errors = validate(crd, "v1alpha1", new, old, strict=True, subresource="status")
    assert errors == []
    assert stored["spec"]["method"] == "lora" and stored["status"]["jobName"] == "frozen-train"


def test_modelexport_spec_is_immutable(committed_crds: dict[str, dict[str, Any]]) -> None:
    crd = committed_crds["ModelExport"]
    doc = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "ModelExport",
        "metadata": {"name": "mex"},
        "spec": {
            "source": {"fineTuneJob": "job"},
            "format": "gguf",
            "destinations": [{"uri": "gs://models/x"}],
        },
    }
    old = created(crd, doc)
    new = copy.deepcopy(old)
    new["spec"]["quantization"] = "q4_K_M"
    _, errors = validate(crd, "v1alpha1", new, old, strict=True)
    assert [e.message() for e in errors] == [
        'spec: Invalid value: "object": spec is immutable: create a new ModelExport to change it'
    ]
    _, errors = validate(crd, "v1alpha1", copy.deepcopy(old), old, strict=True)
    assert errors == []


def test_pydantic_does_not_evaluate_transition_rules() -> None:
    # The models carry the oldSelf rules (for the CRD) but validate a single object.
    assert any(r.is_transition for r in FineTuneJob.model_fields["spec"].annotation.cel_rules)  # type: ignore[union-attr]
    assert any(r.is_transition for r in ModelExport.model_fields["spec"].annotation.cel_rules)  # type: ignore[union-attr]
    FineTuneJob.model_validate(ftj())
