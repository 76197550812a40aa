"""Custom resources pass the CRD's schema and CEL rules at admission, with kube-apiserver's answers."""

from __future__ import annotations

import pytest
from support.kubeapi import KubeApiError

WIDGETS = "test.tuneforge.io/v1"
STRICT = {"fieldValidation": "Strict"}
PATH = "/apis/test.tuneforge.io/v1/namespaces/default/widgets"


def _refused(call, *args, **kwargs) -> KubeApiError:
    with pytest.raises(KubeApiError) as e:
        call(*args, **kwargs)
    return e.value


def test_schema_errors_are_422_with_causes(widgets, widget):
    error = _refused(widgets.create, widget("w1", size=30, color="purple"))
    assert (error.status, error.reason) == (422, "Invalid")
    assert error.message == (
        'Widget.test.tuneforge.io "w1" is invalid: ['
        'spec.color: Unsupported value: "purple": supported values: "red", "green", "blue", "black", '
        "spec.size: Invalid value: 30: spec.size in body should be less than or equal to 10, "
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was '
        "invalid; correct the existing errors to complete validation]"
    )
    details = error.body["details"]
    assert (details["name"], details["group"], details["kind"]) == ("w1", "test.tuneforge.io", "Widget")
    assert details["causes"][0] == {
        "reason": "FieldValueNotSupported",
        "field": "spec.color",
        "message": 'Unsupported value: "purple": supported values: "red", "green", "blue", "black"',
    }


def test_one_error_has_no_brackets(widgets, widget):
    error = _refused(widgets.create, widget("w1", color="black"))
    assert error.message == (
        'Widget.test.tuneforge.io "w1" is invalid: spec.color: Invalid value: "object": '
        "black widgets are not sold"
    )


def test_defaults_are_applied_and_unknown_fields_pruned(widgets, widget):
    created = widgets.create(widget("w1", extra="dropped"))
    assert created["spec"] == {"size": 3, "color": "red"}


def test_strict_field_validation_refuses_unknown_fields(widgets, widget):
    error = _refused(widgets.request, "POST", PATH, body=widget("w1", extra="no"), params=STRICT)
    assert (error.status, error.reason) == (400, "BadRequest")
    assert error.message == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
        'unknown field "spec.extra"'
    )


def test_transition_rules_see_the_old_object(widgets, widget):
    widgets.create(widget("w1", serial="A1"))
    error = _refused(widgets.patch, WIDGETS, "widgets", "w1", {"spec": {"serial": "B2"}})
    assert error.body["details"]["causes"][0]["field"] == "spec.serial"
    assert "serial is immutable" in error.message


def test_status_writes_validate_the_status(widgets, widget):
    widgets.create(widget("w1"))
    error = _refused(
        widgets.patch,
        WIDGETS,
        "widgets",
        "w1",
        {"status": {"observedGeneration": "one"}},
        subresource="status",
    )
    assert error.status == 422
    assert error.body["details"]["causes"][0]["field"] == "status.observedGeneration"
