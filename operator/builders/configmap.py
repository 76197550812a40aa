"""The ConfigMap that carries the validated spec to the trainer."""

from __future__ import annotations

from typing import Any

import yaml

from tuneforge.api.finetunejob import KIND, FineTuneJob
from tuneforge.operator import names


def spec_document(ftj: FineTuneJob) -> dict[str, Any]:
    """The FineTuneJob as the trainer reads it: validated, defaulted, no status."""
    meta = ftj.metadata
    pairs = (("name", meta.name), ("namespace", meta.namespace), ("uid", meta.uid))
    metadata: dict[str, Any] = {k: v for k, v in pairs if v}
    if meta.generation is not None:
        metadata["generation"] = meta.generation
    return {"apiVersion": ftj.api_version, "kind": ftj.kind, "metadata": metadata, "spec": ftj.spec.wire()}


def build_spec_configmap(ftj: FineTuneJob) -> dict[str, Any]:
    meta = ftj.metadata
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.configmap_name(meta.name),
            "namespace": meta.namespace,
            "labels": names.labels(meta.name, "spec"),
            "ownerReferences": [names.owner_reference(KIND, meta.name, meta.uid or "")],
        },
        "data": {names.SPEC_KEY: yaml.safe_dump(spec_document(ftj), sort_keys=False)},
    }
