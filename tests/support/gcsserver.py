"""A GCS server for the tests: gcp-storage-emulator on 127.0.0.1, in its own process.

A subprocess rather than a thread in the test process: the emulator's
single-threaded HTTP server then never competes with the code under test
for the GIL, and its own warnings never meet pytest's warnings-as-errors.
It keeps objects in memory and accepts anonymous requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from support.storage_procs import log_tail, pick_ports, start_child, stop_child, wait_until

PROJECT = "tuneforge-tests"


@dataclass
class GcsServer:
    endpoint: str
    project: str
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "gcs-emulator.log"

    @property
    def env(self) -> dict[str, str]:
        """What a process (or a Job's container) needs to reach this server."""
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint,
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.endpoint, timeout=10.0)

    def make_bucket(self, name: str | None = None) -> str:
        """Creates a bucket (a unique name when ``name`` is None) and returns its name."""
        bucket = name or f"t-{uuid.uuid4().hex[:16]}"
        with self._http() as http:
            http.post(
                "/storage/v1/b", params={"project": self.project}, json={"name": bucket}
            ).raise_for_status()
        return bucket

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        # A multipart upload, as gcsfs does: the emulator fails a "media"
        # upload of an empty object.
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode(),
                json.dumps({"name": key}).encode(),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        with self._http() as http:
            http.post(
                f"/upload/storage/v1/b/{bucket}/o",
                params={"uploadType": "multipart"},
                content=body,
                headers={"Content-Type": f"multipart/related; boundary={boundary}"},
            ).raise_for_status()

    def get_object(self, bucket: str, key: str) -> bytes:
        with self._http() as http:
            response = http.get(
                f"/download/storage/v1/b/{bucket}/o/{quote(key, safe='')}", params={"alt": "media"}
            )
            response.raise_for_status()
            return response.content

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        with self._http() as http:
            response = http.get(f"/storage/v1/b/{bucket}/o", params={"prefix": prefix})
            response.raise_for_status()
            return sorted(item["name"] for item in response.json().get("items", []))

    def stop(self) -> None:
        stop_child(self.process, grace_s=5)


def _answers(endpoint: str) -> bool:
    try:
        return httpx.get(endpoint + "/", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_gcs_server(workdir: Path, *, attempts: int = 3, timeout_s: float = 30.0) -> GcsServer:
    """Starts the emulator; raises with its log when it does not come up."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "gcs-emulator.log"
    failures: list[str] = []
    for attempt in range(attempts):
        (port,) = pick_ports(1)
        log.write_text(f"--- attempt {attempt + 1}: port {port}\n")
        argv = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--in-memory", "--quiet"]
        proc = start_child(argv, log)
        endpoint = f"http://127.0.0.1:{port}"
        if wait_until(lambda endpoint=endpoint: _answers(endpoint), proc, timeout_s):
            return GcsServer(endpoint, PROJECT, workdir, proc)
        stop_child(proc, grace_s=3)
        failures.append(log_tail(log))
    raise RuntimeError("gcp-storage-emulator did not start; its log:\n" + "\n---\n".join(failures))
