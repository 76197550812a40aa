"""The generated CRDs are structural, bounded, documented, and say what the brief says."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from types import UnionType
from typing import Any

import pytest
from pydantic import BaseModel, Field
from support.kubeapi.admission import STANDARD_FUNCTIONS, cel_functions, cel_identifiers

from tuneforge.api import FineTuneJob, ModelExport, crdgen
from tuneforge.api.base import ApiModel
from tuneforge.api.schema import SchemaError, structural_schema

TYPES = {"object", "array", "string", "integer", "number", "boolean"}
FORBIDDEN = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "nullable", "title", "const"}
# The object envelope: the server's own fields, documented by Kubernetes itself.
ENVELOPE = {"apiVersion", "kind", "metadata"}


def structural_problems(node: dict[str, Any], path: str = "", root: bool = True) -> list[str]:
    """Everything that keeps a schema from being structural and cost-bounded."""
    here = path or "<root>"
    problems = [f"{here}: {key} is not allowed" for key in sorted(FORBIDDEN & node.keys())]
    kind = node.get("type")
    if kind not in TYPES:
        return [*problems, f"{here}: type {kind!r} (every node needs one of {sorted(TYPES)})"]
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node and (node[key] is not True or key.replace("exclusiveM", "m") not in node):
            problems.append(f"{here}: {key} must be `true` beside {key.replace('exclusiveM', 'm')}")
    if kind == "string" and "maxLength" not in node:
        problems.append(f"{here}: string without maxLength")
    if kind == "array":
        problems += [f"{here}: array without maxItems"] if "maxItems" not in node else []
        if "items" not in node:
            problems.append(f"{here}: array without items")
        else:
            problems += structural_problems(node["items"], f"{path}[]", root=False)
        if node.get("x-kubernetes-list-type") == "map":
            items = node.get("items", {})
            for key in node.get("x-kubernetes-list-map-keys", []) or ["<none>"]:
                if key not in items.get("required", []) and "default" not in items.get("properties", {}).get(
                    key, {}
                ):
                    problems.append(f"{here}: list-map key {key} must be required or defaulted")
    if kind == "object":
        problems += _object_problems(node, path, root)
    return problems


def _object_problems(node: dict[str, Any], path: str, root: bool) -> list[str]:
    here = path or "<root>"
    problems = []
    properties = node.get("properties", {})
    extra = node.get("additionalProperties")
    if properties and extra is not None:
        problems.append(f"{here}: properties and additionalProperties together")
    if extra is not None:
        if not isinstance(extra, dict):
            problems.append(f"{here}: additionalProperties must be a schema")
        else:
            problems += [f"{here}: map without maxProperties"] if "maxProperties" not in node else []
            problems += structural_problems(extra, f"{path}{{}}", root=False)
    elif not properties and not (root and path == "metadata"):
        problems.append(f"{here}: object without properties or additionalProperties")
    for name in node.get("required", []):
        if name not in properties:
            problems.append(f"{here}: required {name} is not a property")
    for name, sub in properties.items():
        child = f"{path}.{name}" if path else name
        if root and not path and name in ENVELOPE:
            if name == "metadata" and sub != {"type": "object"}:
                problems.append("metadata: must be just {type: object}")
            continue
        if not sub.get("description"):
            problems.append(f"{child}: no description")
        problems += structural_problems(sub, child, root=False)
    return problems


def schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in crdgen.RESOURCES:
        yield resource.kind, crdgen.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def rules(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, rule, under an atomic list) for every x-kubernetes-validations entry."""
    yield from ((path, rule, False) for rule in node.get("x-kubernetes-validations", []))
    for name, sub in node.get("properties", {}).items():
        yield from rules(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        atomic = node.get("x-kubernetes-list-type") not in ("map", "set")
        for where, rule, under in rules(node["items"], f"{path}[]"):
            yield where, rule, under or atomic
    if isinstance(node.get("additionalProperties"), dict):
        yield from rules(node["additionalProperties"], f"{path}{{}}")


SCHEMAS = dict(schemas())
ALL_RULES = [(kind, path, rule, under) for kind, s in SCHEMAS.items() for path, rule, under in rules(s)]


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_schema_is_structural_bounded_and_documented(kind: str) -> None:
    assert structural_problems(SCHEMAS[kind]) == []


def test_the_checker_finds_what_it_looks_for() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "b"},
            "c": {"type": "array", "items": {"type": "integer"}, "description": "c"},
            "d": {
                "type": "object",
                "additionalProperties": {"type": "string", "maxLength": 3},
                "description": "d",
            },
            "e": {"type": "number", "exclusiveMinimum": 0, "description": "e"},
            "f": {"type": "object", "description": "f"},
        },
        "required": ["z"],
    }
    assert sorted(structural_problems(bad)) == sorted(
        [
            "a: no description",
            "a: string without maxLength",
            "b: anyOf is not allowed",
            f"b: type None (every node needs one of {sorted(TYPES)})",
            "c: array without maxItems",
            "d: map without maxProperties",
            "e: exclusiveMinimum must be `true` beside minimum",
            "f: object without properties or additionalProperties",
            "<root>: required z is not a property",
        ]
    )


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_kind_is_described_and_envelope_is_standard(kind: str) -> None:
    schema = SCHEMAS[kind]
    assert len(schema["description"]) > 40
    assert schema["required"] == ["spec"]
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["properties"]["apiVersion"]["type"] == schema["properties"]["kind"]["type"] == "string"


@pytest.mark.parametrize(("kind", "path", "rule", "under_atomic_list"), ALL_RULES)
def test_every_rule_is_standard_cel_that_cel_python_runs(
    kind: str, path: str, rule: dict[str, Any], under_atomic_list: bool
) -> None:
    used = cel_functions(rule["rule"])
    assert used <= STANDARD_FUNCTIONS, (
        f"{kind} {path}: {rule['rule']} uses {sorted(used - STANDARD_FUNCTIONS)}"
    )
    assert rule["message"].strip(), f"{kind} {path}: rule without a message"
    names = cel_identifiers(rule["rule"])
    if "oldSelf" in names:
        # The API server refuses transition rules where items have no identity.
        assert not under_atomic_list, f"{kind} {path}: oldSelf under an atomic list"
    if path == "":
        # At the root, CEL sees only metadata.name and metadata.generateName.
        for field in re.findall(r"self\.metadata\.(\w+)", rule["rule"]):
            assert field in ("name", "generateName"), f"{kind}: root rule reads metadata.{field}"


def nodes_with_rules(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if node.get("x-kubernetes-validations"):
        yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from nodes_with_rules(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from nodes_with_rules(node["items"], f"{path}[]")


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_every_field_path_names_a_declared_field(kind: str) -> None:
    # The API server refuses a CRD whose fieldPath does not resolve in the schema.
    for path, node in nodes_with_rules(SCHEMAS[kind]):
        for rule in node["x-kubernetes-validations"]:
            if "fieldPath" not in rule:
                continue
            assert rule["fieldPath"].startswith("."), rule
            target = node
            for name in rule["fieldPath"][1:].split("."):
                assert name in target.get("properties", {}), (
                    f"{kind} {path}: {rule['fieldPath']} is not declared"
                )
                target = target["properties"][name]


def test_rules_exist_where_the_models_declare_them() -> None:
    where = {(kind, path) for kind, path, _, _ in ALL_RULES}
    assert ("FineTuneJob", "") in where  # metadata.name length
    assert ("FineTuneJob", "spec.model.source") in where
    assert ("FineTuneJob", "spec.exports[].destinations[]") in where
    assert ("ModelExport", "spec.destinations[]") in where
    assert ("ModelExport", "spec.source") in where
    assert len(ALL_RULES) >= 40


def test_finetunejob_crd_names_columns_and_subresources() -> None:
    crd = crdgen.crds()["FineTuneJob"]
    assert crd["metadata"]["name"] == "finetunejobs.tuneforge.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "FineTuneJob",
        "listKind": "FineTuneJobList",
        "plural": "finetunejobs",
        "singular": "finetunejob",
        "shortNames": ["ftj"],
        "categories": ["tuneforge"],
    }
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {
        c["name"]: (c["jsonPath"], c["type"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    }
    assert columns == {
        "Status": ('.status.conditions[?(@.type=="Succeeded")].status', "string", 0),
        "Reason": ('.status.conditions[?(@.type=="Succeeded")].reason', "string", 0),
        "Progress": (".status.progress.percent", "integer", 0),
        "Loss": (".status.progress.loss", "number", 0),
        "Age": (".metadata.creationTimestamp", "date", 0),
        "Job": (".status.jobName", "string", 1),
        "Method": (".spec.method", "string", 1),
        "Model": (".spec.model.source", "string", 1),
    }


def test_modelexport_crd_names_and_columns() -> None:
    crd = crdgen.crds()["ModelExport"]
    assert crd["spec"]["names"]["shortNames"] == ["mex"]
    assert crd["spec"]["names"]["categories"] == ["tuneforge"]
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Status", "Reason", "Format", "Age"]


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_conditions_are_a_list_map_keyed_by_type(kind: str) -> None:
    conditions = SCHEMAS[kind]["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_translation_details() -> None:
    spec = SCHEMAS["FineTuneJob"]["properties"]["spec"]["properties"]
    hp = spec["hyperparameters"]
    assert hp["default"] == {} and spec["resources"]["default"] == {} and spec["runPolicy"]["default"] == {}
    assert hp["properties"]["learningRate"] == {
        "default": 0.0002,
        "description": "Peak learning rate.",
        "exclusiveMinimum": True,
        "maximum": 1,
        "minimum": 0,
        "type": "number",
    }
    assert hp["properties"]["targetModules"]["default"] == ["all-linear"]
    assert spec["method"]["enum"] == ["lora", "qlora", "full"] and spec["method"]["default"] == "lora"
    assert "evaluation" not in SCHEMAS["FineTuneJob"]["properties"]["spec"].get("required", [])
    node_selector = spec["resources"]["properties"]["nodeSelector"]
    assert node_selector["additionalProperties"] == {"type": "string", "maxLength": 63}
    assert node_selector["maxProperties"] == 32
    # Docstrings wrap in the source; descriptions do not.
    assert "\n" not in spec["dataset"]["properties"]["format"]["description"]


# --- model <-> CRD paths ------------------------------------------------------


def _inner_models(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """(suffix, model) for the models inside an annotation: [] for list items, {} for map values."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _inner_models(typing.get_args(annotation)[0])
    elif origin in (typing.Union, UnionType):
        for arg in typing.get_args(annotation):
            yield from _inner_models(arg)
    elif origin is list:
        yield from ((f"[]{s}", m) for s, m in _inner_models(typing.get_args(annotation)[0]))
    elif origin is dict:
        yield from ((f"{{}}{s}", m) for s, m in _inner_models(typing.get_args(annotation)[1]))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation


def model_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        paths.add(path)
        for suffix, inner in _inner_models(info.annotation):
            paths |= model_paths(inner, f"{path}{suffix}.")
    return paths


def schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        paths.add(path)
        paths |= schema_paths(sub, f"{path}.")
        if "items" in sub:
            paths |= schema_paths(sub["items"], f"{path}[].")
        if isinstance(sub.get("additionalProperties"), dict):
            paths |= schema_paths(sub["additionalProperties"], f"{path}{{}}.")
    return paths


@pytest.mark.parametrize("model", [FineTuneJob, ModelExport], ids=lambda m: m.__name__)
def test_every_model_field_is_in_the_schema_and_back(model: type[ApiModel]) -> None:
    in_model = {p for p in model_paths(model) if not p.startswith("metadata.")}
    in_schema = schema_paths(SCHEMAS[model.__name__])
    assert sorted(in_model - in_schema) == [], "model fields missing from the CRD"
    assert sorted(in_schema - in_model) == [], "CRD fields the model does not have"
    assert "spec" in in_schema and "status.conditions[].type" in in_schema  # the walk goes deep


# --- generator refuses what it cannot express ----------------------------------


class _Unionized(ApiModel):
    value: int | str = 1
    """A union."""


class _Part(ApiModel):
    size: int = 1
    """Size."""


class _OddDefault(ApiModel):
    part: _Part = Field(default_factory=lambda: _Part(size=2))
    """A part."""


def test_unions_are_refused() -> None:
    with pytest.raises(SchemaError, match="anyOf cannot be expressed"):
        structural_schema(_Unionized)


def test_object_defaults_must_be_the_all_defaults_object() -> None:
    with pytest.raises(SchemaError, match=r"must build _Part\(\) with no arguments"):
        structural_schema(_OddDefault)
