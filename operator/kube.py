"""The operator's Kubernetes I/O, on lightkube's async client.

Why lightkube: typed models of the built-in kinds, generic resources for our
CRDs, one async client that reads kubeconfig or the in-cluster account —
and no threads, so kopf's event loop is never blocked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, KubeConfig, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from tuneforge.api import modelexport
from tuneforge.api.base import GROUP, VERSION
from tuneforge.api.finetunejob import KIND, PLURAL
from tuneforge.operator import names

FineTuneJobResource = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
ModelExportResource = create_namespaced_resource(GROUP, VERSION, modelexport.KIND, modelexport.PLURAL)

log = logging.getLogger(__name__)


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class Kube:
    """The few calls the operator makes, on plain dicts in and out."""

    def __init__(self, kubeconfig: Path | None = None) -> None:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        self.client = AsyncClient(config, field_manager="tuneforge-operator")

    async def close(self) -> None:
        await self.client.close()

    async def ensure(self, manifest: dict[str, Any]) -> bool:
        """Creates the object; an existing one is left as it is. True if created."""
        try:
            await self.client.create(codecs.from_dict(manifest))
            return True
        except ApiError as err:
            if err.status.code == 409:
                return False
            raise

    async def _get(self, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _as_dict(await self.client.get(resource, name, namespace=namespace))
        except ApiError as err:
            if err.status.code == 404:
                return None
            raise

    async def get_finetunejob(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(FineTuneJobResource, namespace, name)

    async def get_modelexport(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(ModelExportResource, namespace, name)

    async def patch_finetunejob_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.client.patch(
            FineTuneJobResource.Status,
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )

    async def patch_modelexport_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.client.patch(
            ModelExportResource.Status,
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get(Job, namespace, name)

    async def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self.client.patch(Job, name, patch, namespace=namespace, patch_type=PatchType.MERGE)

    async def job_pods(
        self, namespace: str, owner: str, owner_label: str = names.LABEL_FINETUNEJOB
    ) -> list[dict[str, Any]]:
        selector: dict[str, Any] = {owner_label: names.label_value(owner)}
        return [_as_dict(p) async for p in self.client.list(Pod, namespace=namespace, labels=selector)]
