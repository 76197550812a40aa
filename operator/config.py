"""Operator-wide settings, read once from the environment at start-up."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tuneforge import __version__


class OperatorConfig(BaseModel):
    """Cluster-level choices a FineTuneJob does not make itself.

    Each field reads ``TUNEFORGE_<FIELD_IN_CAPS>`` (see :func:`from_env`);
    dict fields take ``key=value,key2=value2``.
    """

    model_config = ConfigDict(frozen=True)

    image: str = f"ghcr.io/tuneforge/tuneforge:{__version__}"
    """Image of the fetch and trainer containers (the `trainer` extra installed)."""
    image_pull_policy: str = "IfNotPresent"
    gpu_resource: str = "nvidia.com/gpu"
    """Extended resource name that counts GPUs."""
    gpu_type_label: str = "nvidia.com/gpu.product"
    """Node label matched against spec.resources.gpuType."""
    spot_node_selector: dict[str, str] = Field(default_factory=lambda: {"cloud.google.com/gke-spot": "true"})
    """Node labels of spot / preemptible capacity (GKE's by default)."""
    spot_taint_key: str | None = "cloud.google.com/gke-spot"
    """Taint carried by spot nodes, tolerated when spec.resources.spot is true."""
    rendezvous_port: Annotated[int, Field(ge=1, le=65535)] = 29500
    """Port of torch's c10d rendezvous store on the index-0 pod of a multi-node run."""
    model_cache_claim: str | None = None
    """A ReadWriteMany PersistentVolumeClaim (in each job's namespace) holding one copy of each base
    model per (source, revision): fetch-model downloads into it once per cluster, then copies from it."""
    init_cpu: str = "500m"
    init_memory: Annotated[str, Field()] = "1Gi"
    """Requests of the fetch init containers."""


def _parse_map(raw: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
    return {k.strip(): v.strip() for k, v in pairs}


def from_env(environ: dict[str, str]) -> OperatorConfig:
    values: dict[str, object] = {}
    for name, field in OperatorConfig.model_fields.items():
        raw = environ.get(f"TUNEFORGE_{name.upper()}")
        if raw is None:
            continue
        if field.annotation == dict[str, str]:
            values[name] = _parse_map(raw)
        elif raw == "" and "None" in str(field.annotation):
            values[name] = None
        else:
            values[name] = raw
    return OperatorConfig.model_validate(values)
