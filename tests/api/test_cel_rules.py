"""tuneforge.api.cel: rules evaluated on wire values inside pydantic, transition rules skipped."""

from __future__ import annotations

from typing import Annotated, ClassVar

import pytest
from pydantic import ValidationError
from support.kubeapi.admission import cel_eval

from tuneforge.api.base import ApiModel, ModelUri, OutputUri, SecretKeyRef
from tuneforge.api.cel import CelRule, to_wire
from tuneforge.api.finetunejob import Hyperparameters


class Window(ApiModel):
    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.minSize <= self.maxSize",
            message="minSize must not exceed maxSize",
            field_path=".minSize",
        ),
        CelRule(rule="self.minSize == oldSelf.minSize", message="minSize is immutable"),
    )

    min_size: int = 1
    """Lower bound."""
    max_size: int = 10
    """Upper bound."""
    name: Annotated[str, CelRule(rule="self != oldSelf", message="never checked by pydantic")] = "w"
    """A name."""


def test_model_rules_see_the_wire_form_with_defaults() -> None:
    assert Window.model_validate({"minSize": 3}).wire() == {"minSize": 3, "maxSize": 10, "name": "w"}
    with pytest.raises(ValidationError, match="minSize must not exceed maxSize"):
        Window.model_validate({"minSize": 30})


def test_transition_rules_are_for_the_api_server_only() -> None:
    rules = Window.cel_rules
    assert [r.is_transition for r in rules] == [False, True]
    Window.model_validate({"name": "anything"})  # neither oldSelf rule ran
    assert rules[0].to_schema() == {
        "rule": "self.minSize <= self.maxSize",
        "message": "minSize must not exceed maxSize",
        "fieldPath": ".minSize",
    }
    assert "fieldPath" not in rules[1].to_schema()


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("hf://Qwen/Qwen2.5-0.5B", True),
        ("s3://bucket.name-1/path/to/model", True),
        ("gs://bkt", True),
        ("pvc://models-claim/llama", True),
        ("file:///abs/path", True),
        ("s3://Bucket/x", False),
        ("s3://ab", False),
        ("hf://just-org", False),
        ("https://example.com/model", False),  # not a model scheme
        ("gs://bucket/a b", False),
        ("s3://bucket/a/../b", False),
        ("s3://bucket/..", False),
        ("s3://bucket/a..b/c", True),  # '..' inside a name is fine
    ],
)
def test_uri_rules_in_pydantic_and_cel_agree(uri: str, ok: bool) -> None:
    class Holder(ApiModel):
        uri: ModelUri
        """A URI."""

    rules = Holder.model_json_schema()["properties"]["uri"]["x-kubernetes-validations"]
    assert all(cel_eval(r["rule"], uri) for r in rules) is ok
    if ok:
        assert Holder(uri=uri).uri == uri
    else:
        with pytest.raises(ValidationError):
            Holder(uri=uri)


def test_holds_is_false_on_evaluation_errors() -> None:
    rule = CelRule(rule="self.missing > 1", message="m")
    assert rule.holds({"present": 1}) is False
    assert CelRule(rule="has(self.a) && self.a > 1", message="m").holds({"a": 2}) is True


def test_field_rules_report_the_field() -> None:
    class Out(ApiModel):
        uri: OutputUri
        """Where."""

    with pytest.raises(ValidationError) as caught:
        Out(uri="https://example.com/x")
    (error,) = caught.value.errors()
    assert error["loc"] == ("uri",)
    assert error["msg"].startswith(
        "the output location must be a URI starting with one of gs://, s3://, file://"
    )


def test_to_wire_drops_nones_and_uses_camel_case() -> None:
    ref = SecretKeyRef(name="hf")
    assert to_wire([ref, {"k": ref}]) == [
        {"name": "hf", "key": "token"},
        {"k": {"name": "hf", "key": "token"}},
    ]
    assert "warmupRatio" not in to_wire(Hyperparameters())
    assert to_wire(Hyperparameters())["targetModules"] == ["all-linear"]
