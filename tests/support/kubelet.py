"""A job controller and a kubelet for the emulated API, in one polling thread.

The job controller turns each batch/v1 Job into Pods (honouring suspend,
backoffLimit, podFailurePolicy, activeDeadlineSeconds) and keeps the Job's
status; the kubelet runs each Pod with ``tuneforge.podrun`` — the engine
``tuneforge run`` uses — and writes the Pod's status back. Pods reach the API
as in a cluster: KUBERNETES_SERVICE_HOST/PORT, a projected token and the CA.
"""

from __future__ import annotations

import base64
import copy
import datetime
import logging
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneforge.podrun import PodRunner

log = logging.getLogger(__name__)
POLL = 0.1
INDEX_KEY = "batch.kubernetes.io/job-completion-index"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _index(pod: dict[str, Any]) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    return int(value) if value is not None else None


def _indexed_pod_spec(spec: dict[str, Any], job_name: str, index: int) -> dict[str, Any]:
    """The pod of index ``index``: host name <job>-<index>, and JOB_COMPLETION_INDEX in every container."""
    out = copy.deepcopy(spec)
    out["hostname"] = f"{job_name}-{index}"
    env = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}},
    }
    for container in (out.get("initContainers") or []) + out["containers"]:
        if not any(e["name"] == env["name"] for e in container.get("env") or []):
            container["env"] = [*(container.get("env") or []), env]
    return out


def _parse_time(value: str) -> float:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


class ApiResolver:
    """Secrets and ConfigMaps from the emulated API, as the kubelet reads them."""

    def __init__(
        self, client: Any, namespace: str, ca_pem: str, token: str, claims: dict[str, Path] | None = None
    ) -> None:
        self.client, self.namespace, self.ca_pem, self.token = client, namespace, ca_pem, token
        # PersistentVolumeClaims are folders on this machine, keyed by claim name.
        self.claims = claims if claims is not None else {}

    def _get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.get("v1", plural, name, namespace=self.namespace))
        except Exception as err:  # the fixture's KubeApiError: 404 means absent
            if getattr(err, "status", None) == 404:
                return None
            raise

    def config_map(self, name: str) -> dict[str, str] | None:
        if name == "kube-root-ca.crt":
            return {"ca.crt": self.ca_pem}
        obj = self._get("configmaps", name)
        return None if obj is None else dict(obj.get("data") or {})

    def secret(self, name: str) -> dict[str, bytes] | None:
        obj = self._get("secrets", name)
        if obj is None:
            return None
        values = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        values.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return values

    def service_account_token(self, account: str) -> str | None:
        return self.token

    def persistent_volume_claim(self, name: str) -> Path | None:
        return self.claims.get(name)


class Kubelet:
    """Runs every Job created in the emulated API until ``stop()``."""

    def __init__(self, api: Any, root: Path, *, on_pod_start: Callable[[dict[str, Any]], None] | None = None):
        self.api = api
        self.client = api.client
        self.root = root
        self.on_pod_start = on_pod_start
        self.claims: dict[str, Path] = {}
        """PersistentVolumeClaim name -> the folder that stands for it (tests fill it)."""
        self.extra_env: dict[str, str] = {}
        """More environment for every container (tests fill it: what a node's runtime would add)."""
        self._pod_conditions: dict[str, list[dict[str, Any]]] = {}
        self.runners: dict[str, PodRunner] = {}
        self.outcomes: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._loop = threading.Thread(target=self._run, name="kubelet", daemon=True)
        self._ca = Path(api.ca_path).read_text()
        self.errors: list[BaseException] = []

    def start(self) -> Kubelet:
        self._loop.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for runner in list(self.runners.values()):
            runner.terminate(grace=5)
        self._loop.join(15)
        for thread in self._threads:
            thread.join(15)

    def evict(self, name: str, namespace: str = "default", *, reason: str = "EvictionByEvictionAPI") -> None:
        """Evicts a running pod as a node drain or spot reclaim does; returns at once.

        The pod gets the DisruptionTarget condition, its processes SIGTERM, and SIGKILL
        after the pod's terminationGracePeriodSeconds (30 when unset); it ends Failed,
        and the job controller replaces it without counting it against backoffLimit.
        """
        key = f"{namespace}/{name}"
        runner = self.runners.get(key)
        if runner is None:
            raise LookupError(f"pod {key} is not running here (running: {sorted(self.runners)})")
        pod = self.client.get("v1", "pods", name, namespace=namespace)
        now = _now()
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": reason,
            "message": "Eviction API: evicting",
            "lastTransitionTime": now,
        }
        self._pod_conditions[key] = [condition]
        self._patch_pod(pod["metadata"], runner.status())
        grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        thread = threading.Thread(target=runner.terminate, args=(grace,), name=f"evict-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def log_of(self, pod_name: str, container: str) -> str:
        path = self.root / pod_name / "logs" / f"{container}.log"
        return path.read_text() if path.exists() else ""

    # --- the loop --------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                for job in self.client.list("batch/v1", "jobs"):
                    self._control(job)
                self._reap_deleted_pods()
            except Exception as err:  # keep serving; a test reads self.errors
                if not self._stop.is_set():
                    log.exception("kubelet loop")
                    self.errors.append(err)

    def _pods_of(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        pods = self.client.list("v1", "pods", namespace=job["metadata"]["namespace"])
        return [
            p for p in pods if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences") or [])
        ]

    def _reap_deleted_pods(self) -> None:
        for key, runner in list(self.runners.items()):
            namespace, name = key.split("/", 1)
            try:
                pod = self.client.get("v1", "pods", name, namespace=namespace)
            except Exception as err:
                if getattr(err, "status", None) != 404:
                    raise
                pod = None
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                runner.terminate(grace=10)
                self.runners.pop(key, None)

    # --- the job controller ------------------------------------------------------

    def _control(self, job: dict[str, Any]) -> None:
        status = dict(job.get("status") or {})
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            return
        pods = [p for p in self._pods_of(job) if not p["metadata"].get("deletionTimestamp")]
        spec = job["spec"]
        if spec.get("suspend"):
            for pod in pods:
                self._delete_pod(pod)
            self._patch_job(job, {"active": 0, "ready": 0})
            return
        phases = [p.get("status", {}).get("phase") or "Pending" for p in pods]
        succeeded = phases.count("Succeeded")
        completions = int(spec.get("completions") or 1)
        indexed = spec.get("completionMode") == "Indexed"
        if indexed:  # each index counts once, however many of its pods succeeded
            succeeded = len({_index(p) for p, ph in zip(pods, phases, strict=True) if ph == "Succeeded"})
        failed_pods = [p for p, ph in zip(pods, phases, strict=True) if ph == "Failed"]
        counted = [p for p in failed_pods if self._policy_action(job, p) != "Ignore"]
        active = [p for p, ph in zip(pods, phases, strict=True) if ph in ("Pending", "Running")]
        start = status.get("startTime") or _now()
        update: dict[str, Any] = {
            "active": len(active),
            "succeeded": succeeded,
            "failed": len(counted),
            "startTime": start,
        }
        deadline = spec.get("activeDeadlineSeconds")
        if indexed:
            done = sorted({_index(p) for p, ph in zip(pods, phases, strict=True) if ph == "Succeeded"})
            update["completedIndexes"] = ",".join(str(i) for i in done)
        if succeeded >= completions:
            update.update(completionTime=_now(), active=0)
            update["conditions"] = [
                self._cond("SuccessCriteriaMet", "CompletionsReached"),
                self._cond("Complete", ""),
            ]
        elif (rule := self._fail_job_rule(job, failed_pods)) is not None:
            self._stop_all(active)  # a failed Job's other pods are stopped, as the controller does
            update["conditions"] = [
                self._cond("FailureTarget", "PodFailurePolicy", rule),
                self._cond("Failed", "PodFailurePolicy", rule),
            ]
            update["active"] = 0
        elif len(counted) > int(spec.get("backoffLimit", 6)):
            self._stop_all(active)
            message = "Job has reached the specified backoff limit"
            update["conditions"] = [
                self._cond("FailureTarget", "BackoffLimitExceeded", message),
                self._cond("Failed", "BackoffLimitExceeded", message),
            ]
            update["active"] = 0
        elif deadline and time.time() - _parse_time(start) > int(deadline):
            for pod in active:
                self._delete_pod(pod)
            message = "Job was active longer than specified deadline"
            update["conditions"] = [
                self._cond("FailureTarget", "DeadlineExceeded", message),
                self._cond("Failed", "DeadlineExceeded", message),
            ]
            update["active"] = 0
        elif indexed:  # one pod per index not yet succeeded and not running (Indexed Job)
            done_or_running = {
                _index(p)
                for p, ph in zip(pods, phases, strict=True)
                if ph in ("Succeeded", "Pending", "Running")
            }
            missing = [i for i in range(completions) if i not in done_or_running]
            for index in missing:
                self._create_pod(job, index)
            update["active"] = len(active) + len(missing)
        elif not active:
            self._create_pod(job)
            update["active"] = 1
        if any(status.get(k) != v for k, v in update.items()):
            self._patch_job(job, update)
        for pod in active:
            self._ensure_running(pod, job)

    @staticmethod
    def _cond(type_: str, reason: str, message: str = "") -> dict[str, Any]:
        now = _now()
        return {
            "type": type_,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }

    @staticmethod
    def _rule_matches(rule: dict[str, Any], pod: dict[str, Any]) -> bool:
        """Whether a podFailurePolicy rule matches a failed pod (exit codes or pod conditions)."""
        status = pod.get("status", {})
        on_codes = rule.get("onExitCodes")
        if on_codes:
            containers = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
            for container in containers:
                code = ((container.get("state") or {}).get("terminated") or {}).get("exitCode")
                if code in (None, 0) or on_codes.get("containerName") not in (None, container["name"]):
                    continue
                if (code in on_codes["values"]) == (on_codes["operator"] == "In"):
                    return True
            return False
        wanted = {(c["type"], c.get("status", "True")) for c in rule.get("onPodConditions") or []}
        return any((c.get("type"), c.get("status")) in wanted for c in status.get("conditions") or [])

    def _policy_action(self, job: dict[str, Any], pod: dict[str, Any]) -> str | None:
        """The action of the first podFailurePolicy rule a failed pod matches (the job controller's order)."""
        for rule in (job["spec"].get("podFailurePolicy") or {}).get("rules") or []:
            if self._rule_matches(rule, pod):
                return str(rule["action"])
        return None

    def _fail_job_rule(self, job: dict[str, Any], failed: list[dict[str, Any]]) -> str | None:
        rules = (job["spec"].get("podFailurePolicy") or {}).get("rules") or []
        for pod in failed:
            statuses = (pod.get("status", {}).get("initContainerStatuses") or []) + (
                pod.get("status", {}).get("containerStatuses") or []
            )
            for index, rule in enumerate(rules):
                on_codes = rule.get("onExitCodes")
                if rule.get("action") != "FailJob" or not on_codes:
                    continue
                for status in statuses:
                    code = ((status.get("state") or {}).get("terminated") or {}).get("exitCode")
                    if code in (None, 0) or on_codes.get("containerName") not in (None, status["name"]):
                        continue
                    inside = code in on_codes["values"]
                    if inside == (on_codes["operator"] == "In"):
                        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                        return (
                            f"Container {status['name']} for pod {where} "
                            f"failed with exit code {code} matching FailJob rule at index {index}"
                        )
        return None

    def _patch_job(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        meta = job["metadata"]
        self.client.patch(
            "batch/v1",
            "jobs",
            meta["name"],
            {"status": status},
            namespace=meta["namespace"],
            subresource="status",
        )

    def _create_pod(self, job: dict[str, Any], index: int | None = None) -> None:
        meta = job["metadata"]
        template = job["spec"]["template"]
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "batch.kubernetes.io/job-name": meta["name"],
            "job-name": meta["name"],
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "controller-uid": meta["uid"],
        }
        spec = template["spec"]
        annotations: dict[str, str] = {}
        prefix = meta["name"]
        if index is not None:  # Indexed Job: what the job controller adds to each pod
            annotations[INDEX_KEY] = labels[INDEX_KEY] = str(index)
            prefix = f"{meta['name']}-{index}"
            spec = _indexed_pod_spec(spec, meta["name"], index)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{prefix}-{secrets.token_hex(3)[:5]}",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        self.client.create(pod)

    def _stop_all(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            self._delete_pod(pod)

    def _cluster_dns(self, pod: dict[str, Any], job: dict[str, Any]) -> dict[str, str]:
        """Host names of an Indexed Job's pods under their headless Service -> this machine.

        As in a cluster, the names exist only when the Service named by the pod's
        subdomain exists (tuneforge.podrun.dns rewrites them to 127.0.0.1).
        """
        subdomain = pod["spec"].get("subdomain")
        namespace = pod["metadata"]["namespace"]
        if not subdomain or job["spec"].get("completionMode") != "Indexed":
            return {}
        try:
            self.client.get("v1", "services", subdomain, namespace=namespace)
        except Exception as err:
            if getattr(err, "status", None) == 404:
                return {}
            raise
        hosts = {}
        for index in range(int(job["spec"].get("completions") or 1)):
            host = f"{job['metadata']['name']}-{index}.{subdomain}"
            for suffix in ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local"):
                hosts[host + suffix] = "127.0.0.1"
        return hosts

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        try:
            self.client.delete("v1", "pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        except Exception as err:
            if getattr(err, "status", None) != 404:
                raise

    # --- the kubelet -----------------------------------------------------------

    def _ensure_running(self, pod: dict[str, Any], job: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if key in self.runners or key in self.outcomes:
            return
        resolver = ApiResolver(self.client, meta["namespace"], self._ca, self.api.token, self.claims)
        runner = PodRunner(
            pod,
            resolver,
            self.root / meta["name"],
            extra_env={
                **self.extra_env,
                "KUBERNETES_SERVICE_HOST": str(self.api.host),
                "KUBERNETES_SERVICE_PORT": str(self.api.port),
            },
            on_update=lambda status: self._patch_pod(meta, status),
            config_retry=0.5,
            hosts=self._cluster_dns(pod, job),
        )
        self.runners[key] = runner
        if self.on_pod_start:
            self.on_pod_start(pod)

        def run() -> None:
            try:
                self.outcomes[key] = runner.run()
            except BaseException as err:
                log.exception("pod %s", key)
                self.errors.append(err)
                self.outcomes[key] = None
            finally:
                self.runners.pop(key, None)

        thread = threading.Thread(target=run, name=f"pod-{meta['name']}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _patch_pod(self, meta: dict[str, Any], status: dict[str, Any]) -> None:
        added = self._pod_conditions.get(f"{meta['namespace']}/{meta['name']}")
        if added:  # conditions the API server set (DisruptionTarget) survive the kubelet's updates
            kept = [c for c in status.get("conditions") or [] if c["type"] not in {a["type"] for a in added}]
            status = {**status, "conditions": kept + added}
        try:
            self.client.patch(
                "v1",
                "pods",
                meta["name"],
                {"status": status},
                namespace=meta["namespace"],
                subresource="status",
            )
        except Exception as err:
            if getattr(err, "status", None) != 404:  # deleted while running: nothing to report to
                log.warning("cannot patch pod %s status: %s", meta["name"], err)
