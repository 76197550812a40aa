"""URLs and bodies of the Kubernetes API: paths split into their parts, JSON answers, request bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import yaml

from support.kubeapi.errors import bad_request

APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    legacy_watch: bool = False


def parse_path(path: str) -> Route | None:
    """Splits /api/v1/... and /apis/GROUP/VERSION/... into their parts; None for other paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    legacy_watch = bool(rest) and rest[0] == "watch"
    if legacy_watch:
        rest = rest[1:]
    if not rest:
        return Route(group, version, None, None, None, None)
    namespace_object = (
        group == "" and len(rest) == 3 and rest[0] == "namespaces" and rest[2] in ("status", "finalize")
    )
    if rest[0] == "namespaces" and len(rest) >= 3 and not namespace_object:
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = None
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return Route(group, version, plural, namespace, name, sub, legacy_watch)


def json_response(
    body: Any, status: int = 200, content_type: str = "application/json"
) -> aiohttp.web.Response:
    response = aiohttp.web.Response(body=json.dumps(body).encode(), status=status)
    response.headers["Content-Type"] = content_type
    return response


def flag(params: Any, name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    return value.lower() in ("true", "1")


def parse_body(raw: bytes, content_type: str) -> Any:
    """JSON for every content type but server-side apply, which may be YAML."""
    if not raw.strip():
        return None
    try:
        if content_type == APPLY_PATCH:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except ValueError as e:
        raise bad_request(
            f"the request body is not valid {'YAML' if content_type == APPLY_PATCH else 'JSON'}: {e}"
        ) from None
