"""The controllers that finish deletions: garbage collector, CRD cleanup, namespace cleanup.

Like kube-controller-manager's garbage collector, it works from
ownerReferences after the fact, asynchronously:

- a dependent whose owners are all gone is deleted (in the background), one
  that still has a live owner just loses the dangling reference; so deleting
  a FineTuneJob deletes its Job, and then the Job's Pods;
- an owner deleted with propagationPolicy=Foreground keeps a
  `foregroundDeletion` finalizer until its dependents are gone;
- one deleted with Orphan keeps an `orphan` finalizer until its dependents
  no longer reference it;
- a deleted CRD first deletes its custom resources, a deleted namespace its
  contents (each honouring their own finalizers), then goes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from support.kubeapi import crds
from support.kubeapi.apiserver import CRD_KEY, FOREGROUND, NAMESPACE_KEY, ORPHAN, ApiServer
from support.kubeapi.store import Key

logger = logging.getLogger(__name__)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata", {})
    return meta


def _deleting_with(obj: dict[str, Any], finalizer: str) -> bool:
    meta = _meta(obj)
    return bool(meta.get("deletionTimestamp")) and finalizer in (meta.get("finalizers") or [])


def _drop_finalizer(finalizer: str) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]

    return change


def _drop_owners(uids: set[str]) -> Any:
    def change(obj: dict[str, Any]) -> None:
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") not in uids]
        if refs:
            obj["metadata"]["ownerReferences"] = refs
        else:
            obj["metadata"].pop("ownerReferences", None)

    return change


class GarbageCollector:
    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self._kicked = asyncio.Event()
        api.on_change = self._kicked.set

    async def run(self) -> None:
        while True:
            await self._kicked.wait()
            self._kicked.clear()
            # Let the request that caused the change answer first: the real GC is asynchronous too.
            await asyncio.sleep(0)
            for _ in range(1000):
                if not self.sweep():
                    break
                await asyncio.sleep(0)

    def _delete(self, key: Key, propagation: str) -> bool:
        rtype = self.api.registry.preferred(key[0], key[1])
        if rtype is None:
            return False
        before = self.api.store.get(key)
        self.api.delete_key(rtype, key, propagation)
        return self.api.store.get(key) is not before

    def sweep(self) -> bool:
        """One pass over all objects; True if it changed anything (then another pass is due)."""
        everything = list(self.api.store.all())
        by_uid = {_meta(obj).get("uid"): obj for _, obj in everything}
        dependents: dict[str, list[Key]] = {}
        for key, obj in everything:
            for ref in _meta(obj).get("ownerReferences") or []:
                dependents.setdefault(ref.get("uid"), []).append(key)
        changed = False
        for key, obj in everything:
            changed |= self._settle_dependent(key, obj, by_uid)
        for key, obj in everything:
            meta = _meta(obj)
            if not meta.get("deletionTimestamp"):
                continue
            deps = dependents.get(meta.get("uid", ""), [])
            if _deleting_with(obj, FOREGROUND):
                changed |= self._foreground(key, deps)
            if _deleting_with(obj, ORPHAN) and not deps:
                changed |= self.api.mutate(key, _drop_finalizer(ORPHAN)) is not obj
            if key[:2] == CRD_KEY and crds.CLEANUP_FINALIZER in (meta.get("finalizers") or []):
                changed |= self._cleanup_crd(key, obj)
            if key[:2] == NAMESPACE_KEY and "kubernetes" in (meta.get("finalizers") or []):
                changed |= self._cleanup_namespace(key)
        return changed

    def _settle_dependent(self, key: Key, obj: dict[str, Any], by_uid: dict[Any, dict[str, Any]]) -> bool:
        refs = _meta(obj).get("ownerReferences") or []
        if not refs:
            return False
        orphaning = {
            r["uid"] for r in refs if r.get("uid") in by_uid and _deleting_with(by_uid[r["uid"]], ORPHAN)
        }
        if orphaning:
            return self.api.mutate(key, _drop_owners(orphaning)) is not obj
        dangling = {r.get("uid") for r in refs if r.get("uid") not in by_uid}
        if not dangling:
            return False
        if len(dangling) < len(refs):
            return self.api.mutate(key, _drop_owners({str(u) for u in dangling})) is not obj
        return self._delete(key, "Background")

    def _foreground(self, owner: Key, deps: list[Key]) -> bool:
        if not deps:
            return self.api.mutate(owner, _drop_finalizer(FOREGROUND)) is not None
        changed = False
        for dep in deps:
            changed |= self._delete(dep, "Foreground")
        return changed

    def _cleanup_crd(self, key: Key, crd: dict[str, Any]) -> bool:
        spec = crd.get("spec", {})
        group, plural = spec.get("group", ""), spec.get("names", {}).get("plural", "")
        remaining = [k for k, _ in self.api.store.all() if k[:2] == (group, plural)]
        if not remaining:
            return self.api.mutate(key, _drop_finalizer(crds.CLEANUP_FINALIZER)) is not None
        return any([self._delete(k, "Background") for k in remaining])

    def _cleanup_namespace(self, key: Key) -> bool:
        remaining = [k for k, _ in self.api.store.all() if k[2] == key[3] and k[:2] != NAMESPACE_KEY]
        if not remaining:
            return self.api.mutate(key, _drop_finalizer("kubernetes")) is not None
        return any([self._delete(k, "Background") for k in remaining])
