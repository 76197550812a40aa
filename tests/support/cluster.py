"""What the in-the-loop tests do to a cluster again and again: CRDs, the S3 secret, waiting for an end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
FTJ = ("tuneforge.io/v1alpha1", "finetunejobs")
MEX = ("tuneforge.io/v1alpha1", "modelexports")


def install_crds(kubectl: Any) -> None:
    """kubectl apply -f crds/, then wait until both resources are served."""
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl(
        "wait",
        "--for=condition=established",
        "crd/finetunejobs.tuneforge.io",
        "crd/modelexports.tuneforge.io",
    )


def create_s3_secret(kubectl: Any, s3_server: Any, name: str = "s3-credentials") -> None:
    """The Secret a spec's storage.s3.credentialsSecret names, holding the test server's keys."""
    kubectl(
        "create",
        "secret",
        "generic",
        name,
        f"--from-literal=AWS_ACCESS_KEY_ID={s3_server.access_key}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_server.secret_key}",
    )


def succeeded(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object's Succeeded condition, if it has one."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Succeeded":
            return dict(cond)
    return None


def wait_finished(
    kube_api: Any,
    kind: tuple[str, str],
    name: str,
    *,
    timeout: float,
    interval: float = 0.2,
    seen: list[str] | None = None,
    field: str = "reason",
) -> dict[str, Any]:
    """The object once its Succeeded condition is True or False; ``seen`` gets each new ``field`` value."""

    def check() -> dict[str, Any] | None:
        obj: dict[str, Any] = kube_api.client.get(*kind, name)
        cond = succeeded(obj)
        if cond is not None and seen is not None and (not seen or seen[-1] != cond[field]):
            seen.append(cond[field])
        return obj if cond and cond["status"] != "Unknown" else None

    result: dict[str, Any] = wait_for(
        check, timeout=timeout, interval=interval, message=f"{name} never finished"
    )
    return result
