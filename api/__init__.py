"""The two resources, FineTuneJob and ModelExport, as pydantic models.

These models are the single source of truth: the CRDs in crds/ are generated
from them (``make crds``), the operator, the trainer and ``tuneforge run``
validate with them.
"""

from tuneforge.api.base import API_VERSION, GROUP, VERSION, Condition, SecretKeyRef
from tuneforge.api.finetunejob import FineTuneJob, FineTuneJobSpec, FineTuneJobStatus
from tuneforge.api.modelexport import ModelExport, ModelExportSpec, ModelExportStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "FineTuneJob",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "ModelExport",
    "ModelExportSpec",
    "ModelExportStatus",
    "SecretKeyRef",
]
