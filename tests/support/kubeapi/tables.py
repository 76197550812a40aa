"""Server-side printing: `meta.k8s.io/v1 Table` answers for `kubectl get`.

Custom resources get Name plus the CRD's additionalPrinterColumns (JSONPath,
typed cells, dates as ages) or, when a version declares none, Name and Age
— exactly what the apiextensions table convertor does. Built-ins get Name,
a few kind-specific columns (Pod, Job, Namespace, Event, ConfigMap, Secret,
CRD) and Age.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.kubeapi import jsonpath
from support.kubeapi.resources import ResourceType

TABLE_CONTENT = "as=Table"


def wants_table(accept: str) -> bool:
    return TABLE_CONTENT in accept and "g=meta.k8s.io" in accept


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        when = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.datetime.now(datetime.UTC) - when).total_seconds())


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    cell: Callable[[dict[str, Any]], Any]
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


_NAME = Column(
    "Name", "string", lambda o: o["metadata"].get("name"), "name", "Name must be unique within a namespace."
)
_AGE = Column(
    "Age",
    "date",
    lambda o: age(o["metadata"].get("creationTimestamp")),
    "",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def _typed_cell(kind: str, value: Any) -> Any:
    """apiextensions tableconvertor cellForJSONValue (+ the string case it prints via JSONPath)."""
    if value is None:
        return None
    match kind:
        case "string":
            if isinstance(value, str):
                return value
            if isinstance(value, bool):
                return "true" if value else "false"
            return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)
        case "integer":
            return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        case "number":
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        case "boolean":
            return value if isinstance(value, bool) else None
        case "date":
            return age(value) if isinstance(value, str) else None
    return None


def _crd_column(spec: dict[str, Any]) -> Column:
    path, kind = spec["jsonPath"], spec.get("type", "string")

    def cell(obj: dict[str, Any]) -> Any:
        try:
            found = jsonpath.find(path, obj)
        except jsonpath.JsonPathError:
            return None
        return _typed_cell(kind, found[0]) if found else None

    return Column(
        spec["name"],
        kind,
        cell,
        spec.get("format", ""),
        spec.get("description", ""),
        int(spec.get("priority", 0)),
    )


def _pod_ready(pod: dict[str, Any]) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(pod: dict[str, Any]) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status", {})
    for s in status.get("initContainerStatuses") or []:
        state = s.get("state", {})
        if "terminated" in state and state["terminated"].get("exitCode", 0) != 0:
            return f"Init:{state['terminated'].get('reason') or 'Error'}"
        if "running" in state or "waiting" in state:
            return (
                f"Init:{state.get('waiting', {}).get('reason') or 'Running'}"
                if "waiting" in state
                else "Init:0"
            )
    for s in status.get("containerStatuses") or []:
        state = s.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state and state["terminated"].get("reason"):
            return str(state["terminated"]["reason"])
    return str(status.get("reason") or status.get("phase") or "Pending")


def _job_status(job: dict[str, Any]) -> str:
    conditions = {c.get("type"): c.get("status") for c in job.get("status", {}).get("conditions") or []}
    for kind, label in (
        ("Failed", "Failed"),
        ("Complete", "Complete"),
        ("Suspended", "Suspended"),
        ("FailureTarget", "FailureTarget"),
        ("SuccessCriteriaMet", "SuccessCriteriaMet"),
    ):
        if conditions.get(kind) == "True":
            return label
    return "Running"


def _job_duration(job: dict[str, Any]) -> str:
    status = job.get("status", {})
    start = status.get("startTime")
    if not start:
        return ""
    end = status.get("completionTime")
    began = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
    ended = (
        datetime.datetime.fromisoformat(end.replace("Z", "+00:00"))
        if end
        else datetime.datetime.now(datetime.UTC)
    )
    return human_duration((ended - began).total_seconds())


_BUILTIN: dict[tuple[str, str], list[Column]] = {
    ("", "pods"): [
        Column("Ready", "string", _pod_ready),
        Column("Status", "string", _pod_status),
        Column(
            "Restarts",
            "string",
            lambda p: str(
                sum(int(s.get("restartCount", 0)) for s in p.get("status", {}).get("containerStatuses") or [])
            ),
        ),
    ],
    ("batch", "jobs"): [
        Column("Status", "string", _job_status),
        Column(
            "Completions",
            "string",
            lambda j: f"{j.get('status', {}).get('succeeded', 0)}/{j.get('spec', {}).get('completions', 1)}",
        ),
        Column("Duration", "string", _job_duration),
    ],
    ("", "namespaces"): [Column("Status", "string", lambda n: n.get("status", {}).get("phase", ""))],
    ("", "configmaps"): [
        Column("Data", "integer", lambda c: len(c.get("data") or {}) + len(c.get("binaryData") or {}))
    ],
    ("", "secrets"): [
        Column("Type", "string", lambda s: s.get("type", "")),
        Column("Data", "integer", lambda s: len(s.get("data") or {})),
    ],
    ("", "events"): [
        Column(
            "Last Seen",
            "string",
            lambda e: age(
                e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp")
            ),
        ),
        Column("Type", "string", lambda e: e.get("type", "")),
        Column("Reason", "string", lambda e: e.get("reason", "")),
        Column(
            "Object",
            "string",
            lambda e: (
                f"{str(e.get('involvedObject', {}).get('kind', '')).lower()}/"
                f"{e.get('involvedObject', {}).get('name', '')}"
            ),
        ),
        Column("Message", "string", lambda e: e.get("message", "")),
    ],
}
_NO_AGE = {("", "events"), ("apiextensions.k8s.io", "customresourcedefinitions")}
_CRD_CREATED = Column("Created At", "date", lambda o: o["metadata"].get("creationTimestamp"))


def columns(rtype: ResourceType) -> list[Column]:
    if rtype.printer_columns is not None:
        if not rtype.printer_columns:
            return [_NAME, _AGE]
        return [_NAME, *(_crd_column(c) for c in rtype.printer_columns)]
    if rtype.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return [_NAME, _CRD_CREATED]
    extra = _BUILTIN.get(rtype.key, [])
    return [_NAME, *extra] if rtype.key in _NO_AGE else [_NAME, *extra, _AGE]


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    rtype: ResourceType,
    objs: list[dict[str, Any]],
    *,
    include_object: str = "Metadata",
    resource_version: str | None = None,
    continue_token: str | None = None,
    with_columns: bool = True,
) -> dict[str, Any]:
    cols = columns(rtype)
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": [c.cell(obj) for c in cols]}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [c.definition() for c in cols] if with_columns else [],
        "rows": rows,
    }
