"""Runs a pod: init containers one by one, then the containers together."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.podrun.dns import resolve
from tuneforge.podrun.materialize import (
    container_env,
    container_mounts,
    materialize_volumes,
    process_args,
)
from tuneforge.podrun.paths import rewrite
from tuneforge.podrun.resolver import ConfigError, Resolver

TERMINATION_LIMIT = 4096
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerResult:
    name: str
    exit_code: int
    reason: str
    message: str
    started_at: str
    finished_at: str
    log: Path | None = None


@dataclass
class PodOutcome:
    phase: str  # Succeeded | Failed
    results: list[ContainerResult]

    def result(self, name: str) -> ContainerResult | None:
        return next((r for r in self.results if r.name == name), None)


@dataclass
class _State:
    """Per-container state, in the shape of a Kubernetes ContainerStatus."""

    name: str
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "PodInitializing"}})

    def status(self, image: str) -> dict[str, Any]:
        done = "terminated" in self.state and self.state["terminated"]["exitCode"] == 0
        return {
            "name": self.name,
            "state": self.state,
            "ready": "running" in self.state or done,
            "restartCount": 0,
            "image": image,
            "imageID": "",
            "started": "running" in self.state,
        }


class PodRunner:
    """Runs one pod to completion. ``terminate()`` may be called from another thread.

    ``on_update`` receives the pod's ``status`` (Kubernetes PodStatus shape)
    at every change. ``stream_output`` passes the processes' output through to
    this terminal; otherwise each container's output goes to a log file.
    ``config_retry`` keeps retrying a missing Secret/ConfigMap every that many
    seconds, as a kubelet does; None fails at once.
    """

    def __init__(
        self,
        pod: dict[str, Any],
        resolver: Resolver,
        workdir: Path,
        *,
        cwd: Path | None = None,
        extra_env: dict[str, str] | None = None,
        stream_output: bool = False,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        config_retry: float | None = None,
        bin_dirs: list[Path] | None = None,
        hosts: dict[str, str] | None = None,
    ) -> None:
        self.pod = pod
        self.resolver = resolver
        self.workdir = workdir
        self.cwd = cwd or workdir
        self.extra_env = extra_env or {}
        self.stream_output = stream_output
        self.on_update = on_update
        self.config_retry = config_retry
        self.bin_dirs = bin_dirs or [Path(sys.executable).parent]
        # Host name -> address: cluster DNS for the pods of a multi-node run (podrun/dns.py).
        self.hosts = hosts or {}
        spec = pod["spec"]
        self._init = [_State(c["name"]) for c in spec.get("initContainers") or []]
        self._main = [_State(c["name"]) for c in spec["containers"]]
        self._phase = "Pending"
        self._conditions = {"PodScheduled": "True", "Initialized": "False", "ContainersReady": "False"}
        self._start = _now()
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._terminating = threading.Event()

    # --- status --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        spec = self.pod["spec"]
        every = (spec.get("initContainers") or []) + spec["containers"]
        images = {c["name"]: c.get("image", "") for c in every}
        ready = self._conditions["ContainersReady"]
        conditions = [
            {"type": t, "status": s, "lastTransitionTime": self._start} for t, s in self._conditions.items()
        ]
        conditions.append({"type": "Ready", "status": ready, "lastTransitionTime": self._start})
        out: dict[str, Any] = {
            "phase": self._phase,
            "conditions": conditions,
            "startTime": self._start,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "containerStatuses": [s.status(images[s.name]) for s in self._main],
        }
        if self._init:
            out["initContainerStatuses"] = [s.status(images[s.name]) for s in self._init]
        return out

    def _publish(self) -> None:
        if self.on_update:
            self.on_update(self.status())

    # --- running ---------------------------------------------------------------

    def run(self) -> PodOutcome:
        volumes = self._with_config_retry(
            lambda: materialize_volumes(self.pod, self.workdir, self.resolver),
            self._init or self._main,
        )
        if volumes is None:
            first = (self._init or self._main)[0]
            terminated = first.state.get("terminated", {})
            result = ContainerResult(
                first.name,
                1,
                "CreateContainerConfigError",
                terminated.get("message", ""),
                self._start,
                _now(),
            )
            return self._finish("Failed", [result])
        self._publish()
        results: list[ContainerResult] = []
        for index, container in enumerate(self.pod["spec"].get("initContainers") or []):
            result = self._run_one(container, self._init[index], volumes)
            results.append(result)
            if result.exit_code != 0:
                return self._finish("Failed", results)
        self._conditions["Initialized"] = "True"
        self._phase = "Running"
        threads: list[threading.Thread] = []
        main_results: list[ContainerResult | None] = [None] * len(self._main)

        def work(i: int, c: dict[str, Any]) -> None:
            main_results[i] = self._run_one(c, self._main[i], volumes)

        for index, container in enumerate(self.pod["spec"]["containers"]):
            thread = threading.Thread(target=work, args=(index, container), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        done = [r for r in main_results if r is not None]
        results.extend(done)
        ok = len(done) == len(self._main) and all(r.exit_code == 0 for r in done)
        return self._finish("Succeeded" if ok else "Failed", results)

    def _finish(self, phase: str, results: list[ContainerResult] | None = None) -> PodOutcome:
        self._phase = phase
        self._conditions["ContainersReady"] = "False"
        self._publish()
        return PodOutcome(phase, results or [])

    def _with_config_retry(self, attempt: Callable[[], Any], states: list[_State]) -> Any:
        while True:
            try:
                return attempt()
            except ConfigError as err:
                if states:
                    waiting = {"reason": "CreateContainerConfigError", "message": str(err)}
                    states[0].state = {"waiting": waiting}
                    self._publish()
                if self.config_retry is None or self._terminating.wait(self.config_retry):
                    if states:
                        states[0].state = _terminated(1, "CreateContainerConfigError", str(err), _now())
                    return None

    def _run_one(self, container: dict[str, Any], state: _State, volumes: dict[str, Path]) -> ContainerResult:
        name = container["name"]
        started = _now()
        termination = self.workdir / "termination" / name
        termination.parent.mkdir(parents=True, exist_ok=True)
        termination.write_text("")
        mounts = container_mounts(container, volumes, termination)

        def prepare() -> tuple[list[str], dict[str, str]]:
            env = container_env(container, self.pod, self.resolver)
            env = {k: resolve(rewrite(v, mounts), self.hosts) for k, v in env.items()}
            return [resolve(a, self.hosts) for a in process_args(container, env, mounts)], env

        prepared = self._with_config_retry(prepare, [state])
        if prepared is None or self._terminating.is_set():
            message = state.state.get("terminated", {}).get("message", "terminated before it started")
            return ContainerResult(name, 1, "CreateContainerConfigError", message, started, _now())
        argv, env = prepared
        path = os.pathsep.join([str(p) for p in self.bin_dirs] + ["/usr/local/bin", "/usr/bin", "/bin"])
        proc_env = {"PATH": path, "LANG": os.environ.get("LANG", "C.UTF-8"), **self.extra_env, **env}
        executable = shutil.which(argv[0], path=proc_env["PATH"])
        if executable is None:
            message = f"executable {argv[0]!r} not found"
            state.state = _terminated(127, "ContainerCannotRun", message, started)
            self._publish()
            return ContainerResult(name, 127, "ContainerCannotRun", message, started, _now())
        log_path = None if self.stream_output else self.workdir / "logs" / f"{name}.log"
        exit_code = self._spawn(name, [executable, *argv[1:]], proc_env, state, log_path, started)
        message = _termination_message(termination, exit_code, container, log_path)
        reason = "Completed" if exit_code == 0 else "Error"
        state.state = _terminated(exit_code, reason, message, started)
        if state in self._main:
            self._conditions["ContainersReady"] = "False"
        self._publish()
        return ContainerResult(name, exit_code, reason, message, started, _now(), log_path)

    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        state: _State,
        log_path: Path | None,
        started: str,
    ) -> int:
        if self._terminating.is_set():
            return 143
        log = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = log_path.open("ab")
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.cwd,
                stdout=log if log else None,
                stderr=subprocess.STDOUT if log else None,
                start_new_session=True,
            )
            with self._lock:
                self._procs[name] = proc
            state.state = {"running": {"startedAt": started}}
            if state in self._main:
                self._conditions["ContainersReady"] = "True"
            self._publish()
            try:
                return proc.wait()
            except KeyboardInterrupt:
                self.terminate()
                return proc.wait()
        finally:
            with self._lock:
                self._procs.pop(name, None)
            if log:
                log.close()

    def terminate(self, grace: float = 10.0) -> None:
        """Stops the pod as a kubelet would: SIGTERM, then SIGKILL after ``grace``."""
        self._terminating.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminated(code: int, reason: str, message: str, started: str) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "message": message,
            "startedAt": started,
            "finishedAt": _now(),
        }
    }


def _termination_message(path: Path, exit_code: int, container: dict[str, Any], log: Path | None) -> str:
    message = path.read_bytes()[:TERMINATION_LIMIT].decode(errors="replace") if path.exists() else ""
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if not message.strip() and exit_code != 0 and fallback and log is not None and log.exists():
        tail = log.read_bytes()[-LOG_FALLBACK_BYTES:].decode(errors="replace")
        message = "\n".join(tail.splitlines()[-LOG_FALLBACK_LINES:])
    return message
