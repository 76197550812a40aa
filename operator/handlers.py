"""kopf handlers: a few lines each, the work is in ``reconcile``."""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf

from tuneforge.api import modelexport
from tuneforge.api.base import GROUP, VERSION
from tuneforge.api.finetunejob import PLURAL
from tuneforge.operator import export_reconcile, names, reconcile

# Our own registry, so that importing this module never adds handlers to an
# unrelated kopf operator running in the same process (tests do that).
REGISTRY = kopf.OperatorRegistry()
MANAGED: dict[str, Any] = {
    "app.kubernetes.io/managed-by": names.MANAGED_BY,
    names.LABEL_FINETUNEJOB: kopf.PRESENT,
}


def configure(settings: kopf.OperatorSettings) -> None:
    """Our own annotation prefix and finalizer, not kopf.zalando.org."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Our Events say what happened; kopf's own chatter is not posted.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


def post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message[:1024])


def _ctx(memo: kopf.Memo) -> reconcile.Context:
    ctx: reconcile.Context = memo["ctx"]
    return ctx


@kopf.on.create(GROUP, VERSION, PLURAL, registry=REGISTRY)
@kopf.on.resume(GROUP, VERSION, PLURAL, registry=REGISTRY)
async def finetunejob_created(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    status = await reconcile.create_children(_ctx(memo), dict(body))
    patch.status.update(status)


@kopf.on.field(GROUP, VERSION, PLURAL, field="spec.runPolicy", registry=REGISTRY)
async def run_policy_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile.apply_run_policy(_ctx(memo), dict(body))
    await reconcile.sync_status(_ctx(memo), body["metadata"]["namespace"], body["metadata"]["name"])


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED, registry=REGISTRY)
async def job_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = body["metadata"]["labels"][names.LABEL_FINETUNEJOB]
    deleted = event.get("type") == "DELETED"
    await reconcile.sync_status(_ctx(memo), body["metadata"]["namespace"], owner, job_deleted=deleted)


@kopf.on.event("", "v1", "pods", labels=MANAGED, registry=REGISTRY)
async def pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = body["metadata"]["labels"][names.LABEL_FINETUNEJOB]
    await reconcile.sync_status(_ctx(memo), body["metadata"]["namespace"], owner)


# --- ModelExport ------------------------------------------------------------

EXPORT_PODS: dict[str, Any] = {
    "app.kubernetes.io/managed-by": names.MANAGED_BY,
    names.LABEL_MODELEXPORT: kopf.PRESENT,
}


@kopf.index(GROUP, VERSION, modelexport.PLURAL, registry=REGISTRY)
def exports_by_source(
    namespace: str | None, spec: kopf.Spec, name: str, **_: Any
) -> dict[tuple[str | None, str], str] | None:
    """ModelExports by the FineTuneJob they wait on."""
    source = (spec.get("source") or {}).get("fineTuneJob")
    return {(namespace, source): name} if source else None


@kopf.on.create(GROUP, VERSION, modelexport.PLURAL, registry=REGISTRY)
@kopf.on.resume(GROUP, VERSION, modelexport.PLURAL, registry=REGISTRY)
async def modelexport_created(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    patch.status.update(await export_reconcile.start_export(_ctx(memo), dict(body)))


@kopf.on.event(GROUP, VERSION, PLURAL, registry=REGISTRY)
async def finetunejob_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A FineTuneJob changed: create its spec.exports once it succeeded; wake exports waiting on it."""
    waiting: kopf.Index[tuple[str, str], str] = kwargs["exports_by_source"]
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    await export_reconcile.ensure_exports(_ctx(memo), dict(body))
    for export in waiting.get((namespace, name), []):
        await export_reconcile.source_changed(_ctx(memo), namespace, export)


@kopf.on.event("batch", "v1", "jobs", labels=EXPORT_PODS, registry=REGISTRY)
async def export_job_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = body["metadata"]["labels"][names.LABEL_MODELEXPORT]
    deleted = event.get("type") == "DELETED"
    await export_reconcile.sync_export_status(
        _ctx(memo), body["metadata"]["namespace"], owner, job_deleted=deleted
    )


@kopf.on.event("", "v1", "pods", labels=EXPORT_PODS, registry=REGISTRY)
async def export_pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = body["metadata"]["labels"][names.LABEL_MODELEXPORT]
    await export_reconcile.sync_export_status(_ctx(memo), body["metadata"]["namespace"], owner)
