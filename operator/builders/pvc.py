"""pvc:// sources: the claim is mounted where the trainer reads, read-only, with nothing copied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneforge.api.finetunejob import FineTuneJobSpec
from tuneforge.operator.builders import env as E


@dataclass(frozen=True)
class PvcSource:
    volume: str
    claim: str
    sub_path: str
    mount_path: str


def parse_pvc_uri(uri: str) -> tuple[str, str]:
    """pvc://claim/some/path -> ("claim", "some/path")."""
    rest = uri.removeprefix("pvc://")
    claim, _, path = rest.partition("/")
    return claim, path.strip("/")


def pvc_sources(spec: FineTuneJobSpec) -> list[PvcSource]:
    out = []
    for role, uri, mount_path in (
        ("model", spec.model.source, E.MODEL_DIR),
        ("dataset", spec.dataset.source, E.DATASET_DIR),
        ("eval-dataset", spec.dataset.eval_source, E.EVAL_DATASET_DIR),
    ):
        if uri and uri.startswith("pvc://"):
            claim, path = parse_pvc_uri(uri)
            out.append(PvcSource(f"{role}-pvc", claim, path, mount_path))
    return out


def is_pvc(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith("pvc://")


def pvc_volumes(spec: FineTuneJobSpec) -> list[dict[str, Any]]:
    return [
        {"name": s.volume, "persistentVolumeClaim": {"claimName": s.claim, "readOnly": True}}
        for s in pvc_sources(spec)
    ]


def pvc_mounts(spec: FineTuneJobSpec) -> list[dict[str, Any]]:
    mounts = []
    for s in pvc_sources(spec):
        mount: dict[str, Any] = {"name": s.volume, "mountPath": s.mount_path, "readOnly": True}
        if s.sub_path:
            mount["subPath"] = s.sub_path
        mounts.append(mount)
    return mounts
