"""A small synchronous Kubernetes client for tests (httpx; thread-safe).

It knows nothing of the emulation: it speaks HTTPS with the CA and token of
a kubeconfig, finds plural names and scopes by discovery, and raises
KubeApiError with the server's Status (`.status`, `.reason`, `.body`).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


class KubeApiError(Exception):
    """A non-2xx answer: `.status` (HTTP code), `.reason` (NotFound, Conflict, ...), `.body` (the Status)."""

    def __init__(self, status: int, body: Any, method: str, url: str) -> None:
        self.status = status
        self.body: dict[str, Any] = body if isinstance(body, dict) else {"message": str(body)}
        self.reason: str = str(self.body.get("reason", ""))
        self.message: str = str(self.body.get("message", ""))
        super().__init__(f"{method} {url}: {status} {self.reason}: {self.message}")


def _path(
    api_version: str,
    plural: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class KubeClient:
    def __init__(self, url: str, ca_path: Path, token: str, timeout: float = 30.0) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url,
            verify=ssl.create_default_context(cafile=str(ca_path)),
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
        )
        self._scopes: dict[tuple[str, str], bool] = {}  # (apiVersion, plural) -> namespaced
        self._plurals: dict[tuple[str, str], str] = {}  # (apiVersion, kind) -> plural
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call; returns the decoded JSON answer or raises KubeApiError."""
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        response = self._http.request(method, path, content=content, params=params, headers=headers)
        try:
            decoded = response.json()
        except ValueError:
            decoded = response.text
        if response.status_code >= 400:
            raise KubeApiError(response.status_code, decoded, method, path)
        return decoded

    def _discover(self, api_version: str) -> None:
        doc = self.request("GET", f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}")
        with self._lock:
            for entry in doc["resources"]:
                if "/" not in entry["name"]:
                    self._scopes[(api_version, entry["name"])] = bool(entry["namespaced"])
                    self._plurals[(api_version, entry["kind"])] = entry["name"]

    def namespaced(self, api_version: str, plural: str) -> bool:
        if (api_version, plural) not in self._scopes:
            self._discover(api_version)
        if (api_version, plural) not in self._scopes:
            raise KubeApiError(
                404,
                {"reason": "NotFound", "message": f"no resource {plural} in {api_version}"},
                "GET",
                api_version,
            )
        return self._scopes[(api_version, plural)]

    def plural(self, api_version: str, kind: str) -> str:
        if (api_version, kind) not in self._plurals:
            self._discover(api_version)
        if (api_version, kind) not in self._plurals:
            raise KubeApiError(
                404, {"reason": "NotFound", "message": f"no kind {kind} in {api_version}"}, "GET", api_version
            )
        return self._plurals[(api_version, kind)]

    def _object_path(
        self,
        api_version: str,
        plural: str,
        name: str | None,
        namespace: str | None,
        subresource: str | None = None,
    ) -> str:
        ns = (namespace or "default") if self.namespaced(api_version, plural) else None
        return _path(api_version, plural, ns, name, subresource)

    # --- verbs ----------------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        api_version = obj["apiVersion"]
        plural = self.plural(api_version, obj["kind"])
        path = self._object_path(api_version, plural, None, obj.get("metadata", {}).get("namespace"))
        result: dict[str, Any] = self.request("POST", path, body=obj)
        return result

    def get(self, api_version: str, plural: str, name: str, namespace: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", self._object_path(api_version, plural, name, namespace))
        return result

    def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        ns = namespace if self.namespaced(api_version, plural) else None
        params = {
            k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v
        }
        items: list[dict[str, Any]] = self.request("GET", _path(api_version, plural, ns), params=params)[
            "items"
        ]
        return items

    def patch(
        self,
        api_version: str,
        plural: str,
        name: str,
        patch: Any,
        namespace: str = "default",
        subresource: str | None = None,
        content_type: str = "application/merge-patch+json",
    ) -> dict[str, Any]:
        path = self._object_path(api_version, plural, name, namespace, subresource)
        result: dict[str, Any] = self.request("PATCH", path, body=patch, content_type=content_type)
        return result

    def replace(self, obj: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        api_version = obj["apiVersion"]
        plural = self.plural(api_version, obj["kind"])
        meta = obj["metadata"]
        path = self._object_path(api_version, plural, meta["name"], meta.get("namespace"), subresource)
        result: dict[str, Any] = self.request("PUT", path, body=obj)
        return result

    def delete(
        self,
        api_version: str,
        plural: str,
        name: str,
        namespace: str = "default",
        propagation: str | None = None,
    ) -> dict[str, Any]:
        body = (
            {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
            if propagation
            else None
        )
        result: dict[str, Any] = self.request(
            "DELETE", self._object_path(api_version, plural, name, namespace), body=body
        )
        return result

    def exists(self, api_version: str, plural: str, name: str, namespace: str = "default") -> bool:
        try:
            self.get(api_version, plural, name, namespace)
        except KubeApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    def watch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 5,
        label_selector: str | None = None,
        field_selector: str | None = None,
        **params: str,
    ) -> Iterator[dict[str, Any]]:
        """Yields watch events (`{"type", "object"}`) until the server ends the stream (timeout_seconds)."""
        ns = namespace if self.namespaced(api_version, plural) else None
        query = {"watch": "true", "timeoutSeconds": str(timeout_seconds), **params}
        for key, value in (
            ("resourceVersion", resource_version),
            ("labelSelector", label_selector),
            ("fieldSelector", field_selector),
        ):
            if value is not None:
                query[key] = value
        with self._http.stream(
            "GET", _path(api_version, plural, ns), params=query, timeout=timeout_seconds + 10
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise KubeApiError(response.status_code, response.json(), "GET", str(response.url))
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)
