"""A job controller and a kubelet for the emulated API, in one polling thread.

The job controller turns each batch/v1 Job into Pods (honouring suspend,
backoffLimit, podFailurePolicy, activeDeadlineSeconds) and keeps the Job's
status; the kubelet runs each Pod with ``tuneforge.podrun`` — the engine
``tuneforge run`` uses — and writes the Pod's status back. Pods reach the API
as in a cluster: KUBERNETES_SERVICE_HOST/PORT, a projected token and the CA.
"""

from __future__ import annotations

import base64
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


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> float:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


class ApiResolver:
    """Secrets and ConfigMaps from the emulated API, as the kubelet reads them."""

    def __init__(self, client: Any, namespace: str, ca_pem: str, token: str) -> None:
        self.client, self.namespace, self.ca_pem, self.token = client, namespace, ca_pem, token

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


class Kubelet:
    """Runs every Job created in the emulated API until ``stop()``."""

    def __init__(self, api: Any, root: Path, *, on_pod_start: Callable[[dict[str, Any]], None] | None = None):
        self.api = api
        self.client = api.client
        self.root = root
        self.on_pod_start = on_pod_start
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
        failed_pods = [p for p, ph in zip(pods, phases, strict=True) if ph == "Failed"]
        counted = [p for p in failed_pods if not self._disrupted(p)]
        active = [p for p, ph in zip(pods, phases, strict=True) if ph in ("Pending", "Running")]
        start = status.get("startTime") or _now()
        update: dict[str, Any] = {
            "active": len(active),
            "succeeded": succeeded,
            "failed": len(counted),
            "startTime": start,
        }
        deadline = spec.get("activeDeadlineSeconds")
        if succeeded:
            update.update(completionTime=_now(), active=0)
            update["conditions"] = [
                self._cond("SuccessCriteriaMet", "CompletionsReached"),
                self._cond("Complete", ""),
            ]
        elif (rule := self._fail_job_rule(job, failed_pods)) is not None:
            update["conditions"] = [
                self._cond("FailureTarget", "PodFailurePolicy", rule),
                self._cond("Failed", "PodFailurePolicy", rule),
            ]
        elif len(counted) > int(spec.get("backoffLimit", 6)):
            message = "Job has reached the specified backoff limit"
            update["conditions"] = [
                self._cond("FailureTarget", "BackoffLimitExceeded", message),
                self._cond("Failed", "BackoffLimitExceeded", message),
            ]
        elif deadline and time.time() - _parse_time(start) > int(deadline):
            for pod in active:
                self._delete_pod(pod)
            message = "Job was active longer than specified deadline"
            update["conditions"] = [
                self._cond("FailureTarget", "DeadlineExceeded", message),
                self._cond("Failed", "DeadlineExceeded", message),
            ]
            update["active"] = 0
        elif not active:
            self._create_pod(job)
            update["active"] = 1
        if any(status.get(k) != v for k, v in update.items()):
            self._patch_job(job, update)
        for pod in active:
            self._ensure_running(pod)

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
    def _disrupted(pod: dict[str, Any]) -> bool:
        return any(
            c.get("type") == "DisruptionTarget" and c.get("status") == "True"
            for c in pod.get("status", {}).get("conditions") or []
        )

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

    def _create_pod(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        template = job["spec"]["template"]
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "batch.kubernetes.io/job-name": meta["name"],
            "job-name": meta["name"],
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "controller-uid": meta["uid"],
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{secrets.token_hex(3)[:5]}",
                "namespace": meta["namespace"],
                "labels": labels,
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
            "spec": template["spec"],
        }
        self.client.create(pod)

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        try:
            self.client.delete("v1", "pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        except Exception as err:
            if getattr(err, "status", None) != 404:
                raise

    # --- the kubelet -----------------------------------------------------------

    def _ensure_running(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if key in self.runners or key in self.outcomes:
            return
        resolver = ApiResolver(self.client, meta["namespace"], self._ca, self.api.token)
        runner = PodRunner(
            pod,
            resolver,
            self.root / meta["name"],
            extra_env={
                "KUBERNETES_SERVICE_HOST": str(self.api.host),
                "KUBERNETES_SERVICE_PORT": str(self.api.port),
            },
            on_update=lambda status: self._patch_pod(meta, status),
            config_retry=0.5,
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
