"""Defaulting and validation of the built-in kinds Tuneforge creates.

A small, faithful slice of kube-apiserver's strategies: Jobs get their
selector, pod-template labels and counts defaulted, need a restartPolicy of
Never/OnFailure and keep their template immutable; Pods need containers and
start Pending; Secrets fold `stringData` into base64 `data`; ConfigMap values
must be strings; Namespaces start Active. Other kinds are stored as sent.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from support.kubeapi.errors import Cause
from support.kubeapi.resources import ResourceType


def default_on_create(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    match rtype.key:
        case ("batch", "jobs"):
            _default_job(obj)
        case ("", "pods"):
            obj.setdefault("status", {"phase": "Pending"})
        case ("", "namespaces"):
            obj["status"] = {"phase": "Active"}
            obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = obj[
                "metadata"
            ]["name"]
        case ("", "secrets"):
            _fold_string_data(obj)
            obj.setdefault("type", "Opaque")
    return obj


def default_on_update(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    if rtype.key == ("", "secrets"):
        obj = copy.deepcopy(obj)
        _fold_string_data(obj)
    return obj


def _fold_string_data(obj: dict[str, Any]) -> None:
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_job(obj: dict[str, Any]) -> None:
    uid = obj["metadata"]["uid"]
    name = obj["metadata"]["name"]
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )


def _pod_spec_causes(spec: Any, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [Cause("FieldValueRequired", "Required value", path)]
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(Cause("FieldValueRequired", "Required value", f"{path}.containers"))
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{i}]"
            if not container.get("name"):
                causes.append(Cause("FieldValueRequired", "Required value", f"{where}.name"))
            elif container["name"] in names:
                causes.append(
                    Cause("FieldValueDuplicate", f'Duplicate value: "{container["name"]}"', f"{where}.name")
                )
            else:
                names.add(container["name"])
            if not container.get("image"):
                causes.append(Cause("FieldValueRequired", "Required value", f"{where}.image"))
    return causes


def validate(rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    match rtype.key:
        case ("batch", "jobs"):
            return _validate_job(obj, old)
        case ("", "pods"):
            return _pod_spec_causes(obj.get("spec"), "spec")
        case ("", "configmaps"):
            return [
                Cause(
                    "FieldValueTypeInvalid", f"Invalid value: {json.dumps(v)}: must be a string", f"data.{k}"
                )
                for k, v in (obj.get("data") or {}).items()
                if not isinstance(v, str)
            ]
    return []


_JOB_IMMUTABLE = ("template", "selector", "completions", "completionMode", "podFailurePolicy")


def _validate_job(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    causes = _pod_spec_causes(template.get("spec"), "spec.template.spec")
    restart = (template.get("spec") or {}).get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        causes.append(
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{restart or ""}": supported values: "OnFailure", "Never"',
                "spec.template.spec.restartPolicy",
            )
        )
    elif spec.get("podFailurePolicy") and restart != "Never":
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{restart}": only "Never" is supported when podFailurePolicy is specified',
                "spec.template.spec.restartPolicy",
            )
        )
    if old is not None:
        old_spec = old.get("spec") or {}
        for field in _JOB_IMMUTABLE:
            if field in old_spec and spec.get(field) != old_spec.get(field):
                causes.append(
                    Cause("FieldValueInvalid", "Invalid value: field is immutable", f"spec.{field}")
                )
    return causes
