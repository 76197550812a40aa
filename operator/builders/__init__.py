"""Pure builders: a validated FineTuneJob in, Kubernetes manifests out.

No kopf, no Kubernetes client, no I/O: the operator creates what these
return, and ``tuneforge run`` executes the very same pod spec locally.
"""

from __future__ import annotations

from typing import Any

from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.operator.builders.configmap import build_spec_configmap
from tuneforge.operator.builders.distributed import build_services
from tuneforge.operator.builders.job import build_job
from tuneforge.operator.builders.rbac import build_rbac
from tuneforge.operator.config import OperatorConfig

__all__ = ["build_children", "build_job", "build_rbac", "build_spec_configmap"]


def build_children(ftj: FineTuneJob, config: OperatorConfig) -> list[dict[str, Any]]:
    """Everything a FineTuneJob needs, in creation order (the Job last)."""
    # A multi-node run's headless Service comes before its Job: the pods' names must resolve.
    return [build_spec_configmap(ftj), *build_rbac(ftj), *build_services(ftj, config), build_job(ftj, config)]
