"""Golden cases: every manifest in invalid/ is refused by the CRD and by pydantic.

Each file starts with comment lines:
    # expect: <substring of the API server's message>
    # field: <the field the error names>            (kube path: spec.a[0].b)
    # pydantic: <substring of pydantic's message>   (when it words it differently)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from support.kubeapi.admission import validate

from tuneforge.api import FineTuneJob, ModelExport
from tuneforge.api.base import ApiModel

MODELS: dict[str, type[ApiModel]] = {"FineTuneJob": FineTuneJob, "ModelExport": ModelExport}

CASES = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def header(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        out[key] = value
    assert "expect" in out and "field" in out, f"{path.name}: needs '# expect:' and '# field:' lines"
    return out


def kube_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else str(part))
    return out


def pydantic_messages(exc: ValidationError) -> list[str]:
    return [f"{kube_path(e['loc'])}: {e['msg']}" for e in exc.errors()]


def test_the_corpus_is_large_and_covers_both_kinds() -> None:
    assert len(CASES) >= 30
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in CASES}
    assert kinds == set(MODELS)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_refused_by_the_crd(path: Path, committed_crds: dict[str, dict[str, Any]]) -> None:
    case = header(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    _, errors = validate(committed_crds[doc["kind"]], "v1alpha1", doc, None, strict=True)
    messages = [e.message() for e in errors]
    assert any(case["expect"] in m for m in messages), messages
    named = [e for e in errors if e.field == case["field"] or case["field"] in e.message()]
    assert named, f"no error names {case['field']}: {messages}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_refused_by_pydantic(path: Path) -> None:
    case = header(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    with pytest.raises(ValidationError) as caught:
        MODELS[doc["kind"]].model_validate(doc)
    messages = pydantic_messages(caught.value)
    wanted = case.get("pydantic", case["expect"])
    assert any(wanted in m for m in messages), messages
    assert any(case["field"] in m for m in messages), f"no error names {case['field']}: {messages}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_non_strict_admission_prunes_instead(path: Path, committed_crds: dict[str, dict[str, Any]]) -> None:
    # Without strict field validation an unknown field is dropped, not refused;
    # every other case stays an error.
    case = header(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    admitted, errors = validate(committed_crds[doc["kind"]], "v1alpha1", doc, None, strict=False)
    if case["expect"] == "field not declared in schema":
        assert errors == []
        *parents, leaf = case["field"].split(".")
        node = admitted
        for name in parents:
            node = node[name]
        assert leaf not in node
    else:
        assert errors
