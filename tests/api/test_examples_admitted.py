"""Every example manifest is admitted by the CRD (schema + CEL) and by pydantic,
and both produce the same defaulted object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.kubeapi.admission import validate

from tuneforge.api import FineTuneJob, ModelExport
from tuneforge.api.base import ApiModel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS: dict[str, type[ApiModel]] = {"FineTuneJob": FineTuneJob, "ModelExport": ModelExport}


def example_documents() -> list[Any]:
    params = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        for i, doc in enumerate(docs):
            if doc.get("kind") in MODELS and doc.get("apiVersion", "").startswith("tuneforge.io/"):
                params.append(pytest.param(path, doc, id=f"{path.stem}-{i}-{doc['metadata']['name']}"))
    return params


DOCUMENTS = example_documents()


def test_there_are_examples_of_both_kinds() -> None:
    kinds = {p.values[1]["kind"] for p in DOCUMENTS}
    assert kinds == set(MODELS)
    assert len(DOCUMENTS) >= 6


@pytest.mark.parametrize(("path", "doc"), DOCUMENTS)
def test_example_is_admitted_by_crd_and_pydantic_alike(
    path: Path, doc: dict[str, Any], committed_crds: dict[str, dict[str, Any]]
) -> None:
    admitted, errors = validate(committed_crds[doc["kind"]], "v1alpha1", doc, None, strict=True)
    assert [e.message() for e in errors] == []
    wire = MODELS[doc["kind"]].model_validate(doc).wire()
    assert admitted["spec"] == wire["spec"], "the API server and pydantic default the spec differently"
    assert (admitted["apiVersion"], admitted["kind"]) == (wire["apiVersion"], wire["kind"])


def test_examples_have_a_comment_header() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        assert path.read_text(encoding="utf-8").startswith("#"), (
            f"{path.name}: start with a comment saying what it shows"
        )


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_minimal_object_defaults_the_same_in_both(
    kind: str, committed_crds: dict[str, dict[str, Any]]
) -> None:
    # The strongest case for `default: {}`: nothing but the required fields.
    minimal = {
        "FineTuneJob": {
            "model": {"source": "hf://org/model"},
            "dataset": {"source": "s3://datasets/train.jsonl"},
            "output": {"uri": "s3://models/out"},
        },
        "ModelExport": {"source": {"fineTuneJob": "job"}, "destinations": [{"uri": "gs://models/x"}]},
    }[kind]
    doc = {"apiVersion": "tuneforge.io/v1alpha1", "kind": kind, "metadata": {"name": "m"}, "spec": minimal}
    admitted, errors = validate(committed_crds[kind], "v1alpha1", doc, None, strict=True)
    assert errors == []
    assert admitted["spec"] == MODELS[kind].model_validate(doc).wire()["spec"]
    assert admitted["spec"] != minimal  # defaults were applied


def test_status_defaults_agree_too(committed_crds: dict[str, dict[str, Any]]) -> None:
    old = {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "m"},
        "spec": {
            "model": {"source": "hf://org/model"},
            "dataset": {"source": "s3://datasets/train.jsonl"},
            "output": {"uri": "s3://models/out"},
        },
    }
    patch = dict(
        old,
        status={
            "progress": {"step": 3, "totalSteps": 10},
            "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Training"}],
        },
    )
    admitted, errors = validate(
        committed_crds["FineTuneJob"], "v1alpha1", patch, old, strict=True, subresource="status"
    )
    assert errors == []
    assert admitted["status"] == MODELS["FineTuneJob"].model_validate(patch).wire()["status"]
