"""The admission validator: kube's wording, pruning, defaults, subresources, CEL."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support.kubeapi.admission import (
    NOT_CHECKED,
    CelEvaluationError,
    CelUnsupportedError,
    FieldError,
    cel_eval,
    go_float,
    strict_decoding_message,
    validate,
)


def crd_with(schema: dict[str, Any], *, status: bool = True) -> dict[str, Any]:
    """A minimal CRD around an openAPIV3Schema, for features our CRDs do not use."""
    version: dict[str, Any] = {
        "name": "v1alpha1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
    }
    if status:
        version["subresources"] = {"status": {}}
    return {"metadata": {"name": "widgets.example.com"}, "spec": {"versions": [version]}}


def ftj(**spec: Any) -> dict[str, Any]:
    base = {
        "model": {"source": "hf://org/model"},
        "dataset": {"source": "s3://datasets/train.jsonl"},
        "output": {"uri": "s3://models/out"},
    }
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "x"},
        "spec": base | spec,
    }


def messages(
    crd: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None, **kw: Any
) -> list[str]:
    kw.setdefault("strict", True)
    return [e.message() for e in validate(crd, "v1alpha1", obj, old, **kw)[1]]


# --- kube wording -------------------------------------------------------------


def test_golden_messages(committed_crds: dict[str, dict[str, Any]]) -> None:
    crd = committed_crds["FineTuneJob"]
    not_checked = f'<nil>: Invalid value: "null": {NOT_CHECKED}'
    assert not_checked.startswith('<nil>: Invalid value: "null": some validation rules were not checked')
    assert messages(crd, ftj(method="lorax")) == [
        'spec.method: Unsupported value: "lorax": supported values: "lora", "qlora", "full"',
        not_checked,
    ]
    doc = ftj()
    del doc["spec"]["model"]
    assert messages(crd, doc) == ["spec.model: Required value", not_checked]
    assert messages(crd, ftj(hyperparameters={"learningRate": 0})) == [
        "spec.hyperparameters.learningRate: Invalid value: 0: "
        "spec.hyperparameters.learningRate in body should be greater than 0"
    ]
    assert messages(crd, ftj(hyperparameters={"maxSteps": 20_000_000, "weightDecay": 1.5})) == [
        "spec.hyperparameters.maxSteps: Invalid value: 20000000: "
        "spec.hyperparameters.maxSteps in body should be less than or equal to 1e+07",
        "spec.hyperparameters.weightDecay: Invalid value: 1.5: "
        "spec.hyperparameters.weightDecay in body should be less than or equal to 1",
    ]
    assert messages(crd, ftj(resources={"gpus": True}))[0] == (
        'spec.resources.gpus: Invalid value: "boolean": '
        'spec.resources.gpus in body must be of type integer: "boolean"'
    )
    assert messages(
        crd, ftj(trainer="dpo", dataset={"source": "s3://datasets/t.jsonl", "format": "chat"})
    ) == [
        'spec.dataset.format: Invalid value: "object": '
        "spec.dataset.format must be preference (or auto) when spec.trainer is dpo"
    ]


def test_field_error_renders_like_field_error_in_go() -> None:
    assert FieldError("spec.a", "FieldValueTooLong", "may not be more than 3 bytes", "abcd").message() == (
        "spec.a: Too long: may not be more than 3 bytes"
    )
    assert FieldError("spec.l", "FieldValueTooMany", "must have at most 2 items", 3).message() == (
        "spec.l: Too many: 3: must have at most 2 items"
    )
    assert FieldError("status.c[1]", "FieldValueDuplicate", "", {"type": "Ready"}).message() == (
        'status.c[1]: Duplicate value: {"type":"Ready"}'
    )
    assert FieldError("spec.x", "FieldValueInvalid", "bad", 0.25).body() == "Invalid value: 0.25: bad"
    assert (
        FieldError("", "FieldValueInvalid", "root", "object").message()
        == '<nil>: Invalid value: "object": root'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0002, "0.0002"),
        (1e-05, "1e-05"),
        (2.0, "2"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (-2.5e-7, "-2.5e-07"),
    ],
)
def test_floats_print_as_go_does(value: float, text: str) -> None:
    assert go_float(value) == text


# --- pruning, nulls, defaults ---------------------------------------------------


def test_strict_refuses_unknown_fields_and_names_them(committed_crds: dict[str, dict[str, Any]]) -> None:
    doc = ftj(epochs=3, hyperparameters={"lr": 0.1})
    doc["status"] = {"phase": "Done"}  # dropped on create anyway: status is a subresource
    _, errors = validate(committed_crds["FineTuneJob"], "v1alpha1", doc, None, strict=True)
    assert [e.message() for e in errors] == [
        "spec.epochs: Forbidden: field not declared in schema",
        "spec.hyperparameters.lr: Forbidden: field not declared in schema",
    ]
    assert strict_decoding_message(errors) == (
        'strict decoding error: unknown field "spec.epochs", unknown field "spec.hyperparameters.lr"'
    )
    assert strict_decoding_message([]) is None


def test_non_strict_prunes_unknown_fields_and_keeps_metadata(
    committed_crds: dict[str, dict[str, Any]],
) -> None:
    doc = ftj(epochs=3)
    doc["metadata"]["annotations"] = {"anything": "goes"}
    doc["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    stored, errors = validate(committed_crds["FineTuneJob"], "v1alpha1", doc, None, strict=False)
    assert errors == []
    assert "epochs" not in stored["spec"]
    assert stored["metadata"] == doc["metadata"]
    assert doc["spec"]["epochs"] == 3  # the input is not mutated


def test_null_means_absent_and_then_defaulted(committed_crds: dict[str, dict[str, Any]]) -> None:
    stored, errors = validate(
        committed_crds["FineTuneJob"],
        "v1alpha1",
        ftj(hyperparameters=None, evaluation=None),
        None,
        strict=True,
    )
    assert errors == []
    assert stored["spec"]["hyperparameters"]["learningRate"] == 0.0002
    assert "evaluation" not in stored["spec"]


def test_integers_and_numbers(committed_crds: dict[str, dict[str, Any]]) -> None:
    crd = committed_crds["FineTuneJob"]
    assert messages(crd, ftj(hyperparameters={"batchSize": 4.0, "epochs": 2})) == []
    assert messages(crd, ftj(hyperparameters={"batchSize": 4.5}))[0].startswith(
        'spec.hyperparameters.batchSize: Invalid value: "number": '
    )


def test_map_values_are_checked_with_bracketed_keys() -> None:
    schema = {
        "type": "object",
        "properties": {
            "labels": {
                "type": "object",
                "maxProperties": 2,
                "additionalProperties": {"type": "string", "maxLength": 3},
            }
        },
    }
    crd = crd_with(schema)
    obj = {"labels": {"a": "1", "b": "long", "c": "3"}}
    assert messages(crd, obj) == [
        "labels: Too many: 3: must have at most 2 items",
        "labels[b]: Too long: may not be more than 3 bytes",
        f'<nil>: Invalid value: "null": {NOT_CHECKED}',
    ]


def test_unknown_version_is_a_clear_error(committed_crds: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(
        ValueError, match=r"finetunejobs.tuneforge.io has no version 'v2' \(it has: v1alpha1\)"
    ):
        validate(committed_crds["FineTuneJob"], "v2", ftj(), None, strict=True)


# --- status and the status subresource ---------------------------------------


def test_status_is_dropped_on_create_and_kept_on_main_resource_update(
    committed_crds: dict[str, dict[str, Any]],
) -> None:
    crd = committed_crds["FineTuneJob"]
    doc = ftj()
    doc["status"] = {"jobName": "sneaky"}
    stored, errors = validate(crd, "v1alpha1", doc, None, strict=True)
    assert errors == [] and "status" not in stored
    old = dict(stored, status={"jobName": "x-train"})
    update = dict(copy.deepcopy(old), status={"jobName": "changed"})
    stored, errors = validate(crd, "v1alpha1", update, old, strict=True)
    assert errors == [] and stored["status"] == {"jobName": "x-train", "conditions": []}


def test_status_subresource_validates_status(committed_crds: dict[str, dict[str, Any]]) -> None:
    crd = committed_crds["FineTuneJob"]
    old, _ = validate(crd, "v1alpha1", ftj(), None, strict=True)
    conditions = [
        {"type": "Succeeded", "status": "Unknown", "reason": "Training"},
        {"type": "Succeeded", "status": "Maybe", "reason": "Training"},
    ]
    update = dict(old, status={"progress": {"percent": 150}, "conditions": conditions})
    assert messages(crd, update, old, subresource="status") == [
        'status.conditions[1].status: Unsupported value: "Maybe": '
        'supported values: "True", "False", "Unknown"',
        'status.conditions[1]: Duplicate value: {"type":"Succeeded"}',
        "status.progress.percent: Invalid value: 150: "
        "status.progress.percent in body should be less than or equal to 100",
        f'<nil>: Invalid value: "null": {NOT_CHECKED}',
    ]
    with pytest.raises(ValueError, match="needs the old object"):
        validate(crd, "v1alpha1", update, None, strict=True, subresource="status")


# --- CEL ------------------------------------------------------------------------

RULED = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "ratio": {"type": "number"},
                "missing": {"type": "integer"},
                "items": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                        "x-kubernetes-validations": [
                            {"rule": "self.size >= oldSelf.size", "message": "size may only grow"}
                        ],
                    },
                },
                "atomic": {
                    "type": "array",
                    "items": {
                        "type": "integer",
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "never reached"}],
                    },
                },
            },
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= 5", "messageExpression": "'replicas is ' + string(self.replicas)"},
                {
                    "rule": "self.ratio == 1.0 || self.ratio < 0.5",
                    "fieldPath": ".ratio",
                    "reason": "FieldValueForbidden",
                },
                {"rule": "self.replicas >= oldSelf.replicas"},
                {"rule": "self.missing > 0", "message": "needs missing"},
            ],
        }
    },
}


def test_rules_messages_paths_reasons_and_runtime_errors() -> None:
    crd = crd_with(RULED)
    obj = {"spec": {"replicas": 7, "ratio": 0.7}}
    assert messages(crd, obj) == [
        'spec: Invalid value: "object": replicas is 7',
        "spec.ratio: Forbidden: failed rule: self.ratio == 1.0 || self.ratio < 0.5",
        'spec: Invalid value: "object": no such key: missing evaluating rule: needs missing',
    ]


def test_numbers_reach_cel_as_doubles_and_transition_rules_wait_for_an_update() -> None:
    crd = crd_with(RULED)
    obj = {"spec": {"replicas": 3, "ratio": 1, "missing": 1}}  # ratio 1 (an int) == 1.0
    assert messages(crd, obj) == []
    smaller = copy.deepcopy(obj)
    smaller["spec"]["replicas"] = 2
    assert messages(crd, smaller, obj) == [
        'spec: Invalid value: "object": failed rule: self.replicas >= oldSelf.replicas'
    ]


def test_old_self_follows_list_map_keys_and_skips_atomic_lists() -> None:
    crd = crd_with(RULED)
    old = {
        "spec": {
            "replicas": 1,
            "ratio": 0.1,
            "missing": 1,
            "items": [{"name": "a", "size": 5}],
            "atomic": [1],
        }
    }
    new = copy.deepcopy(old)
    new["spec"]["items"] = [{"name": "b", "size": 1}, {"name": "a", "size": 4}]  # b is new; a shrank
    new["spec"]["atomic"] = [2]
    assert messages(crd, new, old) == ['spec.items[1]: Invalid value: "object": size may only grow']


def test_non_standard_cel_fails_loudly() -> None:
    crd = crd_with(
        {"type": "object", "x-kubernetes-validations": [{"rule": "self.name.lowerAscii() == 'a'"}]}
    )
    with pytest.raises(CelUnsupportedError, match="lowerAscii: not standard CEL"):
        validate(crd, "v1alpha1", {"name": "a"}, None, strict=False)
    with pytest.raises(CelUnsupportedError, match="isURL"):
        cel_eval("isURL(self)", "https://x")


def test_cel_eval_helper() -> None:
    assert cel_eval("self.a.all(x, x > 1)", {"a": [2, 3]}) is True
    assert cel_eval("self.filter(x, x > 1)", [1, 2, 3]) == [2, 3]
    assert cel_eval("self == oldSelf", {"a": 1}, {"a": 1}) is True
    assert cel_eval("self.name.matches('^[a-z]+$')", {"name": "Abc"}) is False
    with pytest.raises(CelEvaluationError, match="no such key: b evaluating rule"):
        cel_eval("self.b == 1", {"a": 1})
