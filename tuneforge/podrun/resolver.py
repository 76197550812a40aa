"""Where a pod's ConfigMaps, Secrets and service-account token come from."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol


class ConfigError(Exception):
    """What a kubelet reports as CreateContainerConfigError: a missing Secret or key."""


class Resolver(Protocol):
    def config_map(self, name: str) -> dict[str, str] | None: ...

    def secret(self, name: str) -> dict[str, bytes] | None: ...

    def service_account_token(self, account: str) -> str | None: ...

    def persistent_volume_claim(self, name: str) -> Path | None: ...


class MapResolver:
    """Resolves from Kubernetes manifests held in memory (``tuneforge run``)."""

    def __init__(
        self,
        objects: Iterable[dict[str, Any]] = (),
        token: str | None = None,
        claims: dict[str, Path] | None = None,
    ) -> None:
        self.config_maps: dict[str, dict[str, str]] = {}
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.token = token
        self.claims = dict(claims or {})
        for obj in objects:
            self.add(obj)

    def add(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if obj.get("kind") == "ConfigMap":
            self.config_maps[name] = dict(obj.get("data") or {})
        elif obj.get("kind") == "Secret":
            values = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            values.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
            self.secrets[name] = values

    def config_map(self, name: str) -> dict[str, str] | None:
        return self.config_maps.get(name)

    def secret(self, name: str) -> dict[str, bytes] | None:
        return self.secrets.get(name)

    def service_account_token(self, account: str) -> str | None:
        return self.token

    def persistent_volume_claim(self, name: str) -> Path | None:
        return self.claims.get(name)
