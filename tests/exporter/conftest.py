"""Fixtures for exporter tests: LoRA adapters of the tiny model, and ``tuneforge export`` runs.

- ``gguf`` (module): llama.cpp's vendored gguf-py module (beside the converters, first on ``sys.path``
  for the module's tests), as the converters and the fast path's child process load it.
- ``tiny_adapter`` (session): a peft LoRA adapter of ``tiny_model`` with random A and B (so a merge
  changes the weights), on q_proj and v_proj, saved as peft saves it.
- ``make_lora`` (session): ``make_lora(base, folder, seed=0, **lora_config)``, the same for any base
  model and LoraConfig.
- ``trained_output`` (session): an output folder as ``tuneforge train`` leaves it: ``adapter/``
  (``tiny_adapter`` with its _MANIFEST.json) and the run record ``run/``.
- ``s3_proxy`` (function): a TCP proxy in front of ``s3_server`` that can slow the bytes a client sends
  (``rate``), cut every connection after ``cut_after`` bytes, and set ``streaming`` once one request body
  is ``signal_after`` bytes in. ``.env`` is ``s3_server.env`` pointing at the proxy.
- ``export_run`` (function): ``export_run(spec, *extra_args, env=None)`` writes a ModelExport with
  ``spec`` and runs ``tuneforge export`` on it in-process, with a fresh work folder and
  termination-message file, and returns an ``ExportRun``; ``export_run.start(...)`` runs it as a
  subprocess and returns ``(Popen, ExportRun)``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

TUNEFORGE = Path(sys.executable).parent / "tuneforge"


def make_adapter(base: Path, folder: Path, *, seed: int = 0, **lora: Any) -> Path:
    """A peft LoRA adapter of ``base`` with random (nonzero) B, saved to ``folder``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "init_lora_weights": False}
    config.update(lora)
    peft_model = get_peft_model(model, LoraConfig(**config))
    with torch.no_grad():  # as if trained: modules_to_save copies differ from the base
        for name, param in peft_model.named_parameters():
            if ".modules_to_save." in name:
                param.add_(torch.randn_like(param) * 0.01)
    peft_model.save_pretrained(str(folder))
    return folder


AdapterMaker = Callable[..., Path]


@pytest.fixture(scope="module")
def gguf() -> Iterator[ModuleType]:
    from tuneforge.exporter.gguf_tools import tools_dir

    path = str(tools_dir() / "gguf-py")
    sys.path.insert(0, path)
    try:
        yield importlib.import_module("gguf")
    finally:
        sys.path.remove(path)


@pytest.fixture(scope="session")
def make_lora() -> AdapterMaker:
    return make_adapter


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model, tmp_path_factory.mktemp("tiny-adapter") / "adapter")


class TcpProxy:
    """Forwards 127.0.0.1:port to an upstream HTTP server, optionally throttling or cutting uploads."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate: float | None = None
        """Bytes per second from client to server (None: as fast as it goes)."""
        self.cut_after: int | None = None
        """Close a connection once this many bytes went from client to server on it."""
        self.signal_after: int | None = None
        self.streaming = threading.Event()
        """Set once a connection has carried ``signal_after`` bytes from client to server."""
        self.cuts = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        down = asyncio.ensure_future(self._pump(up_reader, writer, upload=False))
        await self._pump(reader, up_writer, upload=True)
        await asyncio.wait([down], timeout=30)
        for w in (writer, up_writer):
            w.close()
            self._writers.discard(w)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upload: bool
    ) -> None:
        sent = 0
        try:
            while chunk := await reader.read(64 * 1024):
                if upload and self.cut_after is not None and sent + len(chunk) > self.cut_after:
                    self.cuts += 1
                    writer.transport.abort()
                    return
                if upload and self.rate:
                    await asyncio.sleep(len(chunk) / self.rate)
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                if upload and self.signal_after is not None and sent >= self.signal_after:
                    self.streaming.set()
        except (ConnectionError, OSError):
            pass
        finally:
            if not upload:
                writer.close()
            elif not writer.is_closing() and writer.can_write_eof():
                writer.write_eof()  # the client finished sending: pass that on

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class S3Proxy:
    proxy: TcpProxy
    env: dict[str, str]


@pytest.fixture
def s3_proxy(s3_server: Any) -> Iterator[S3Proxy]:
    proxy = TcpProxy(s3_server.endpoint)
    try:
        yield S3Proxy(proxy, {**s3_server.env, "AWS_ENDPOINT_URL": proxy.endpoint})
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def trained_output(tiny_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output folder as ``tuneforge train`` leaves it, written with the trainer's own writers.

    The adapter is uploaded with its manifest (``upload_tree``) and the run record written by
    ``tuneforge.trainer.runrecord`` for a real, validated FineTuneJob — everything the exporter reads,
    without the 20 s a training run costs here (the trainer's tests train for real).
    """
    from tuneforge.api import FineTuneJob
    from tuneforge.storage import upload_tree
    from tuneforge.trainer.runrecord import output_uris, write_run_record

    output = tmp_path_factory.mktemp("trained") / "output"
    job = FineTuneJob.from_manifest(
        {
            "apiVersion": "tuneforge.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "tiny", "namespace": "tests", "uid": "0000-1111"},
            "spec": {
                "model": {"source": "hf://tuneforge/tiny"},
                "dataset": {"source": "s3://datasets/alpaca-sample.jsonl"},
                "output": {"uri": output.as_uri()},
                "hyperparameters": {"maxSteps": 4, "batchSize": 4, "maxSeqLength": 96, "learningRate": 5e-3},
            },
        }
    )
    uris = output_uris(output.as_uri())
    upload_tree(tiny_adapter, uris["adapter"])
    metrics = {"trainLoss": 7.61, "finalLoss": 7.2, "trainSamples": 24}
    status = {"reason": "Succeeded", "message": "trained 4 steps", "exitCode": 0, "metrics": metrics}
    write_run_record(uris["runRecord"], manifest=job.wire(), log_file=None, history=[], status=status)
    return output


@dataclass
class ExportRun:
    exit_code: int
    workdir: Path
    termination_file: Path
    stderr: str = ""

    @property
    def termination(self) -> dict[str, Any]:
        text = self.termination_file.read_text(encoding="utf-8")
        assert len(text.encode()) <= 4096
        result: dict[str, Any] = json.loads(text)
        return result

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        artifacts: list[dict[str, Any]] = self.termination.get("artifacts", [])
        return artifacts

    @property
    def status(self) -> dict[str, Any]:
        """What the local reporter wrote (status.json in the work folder)."""
        status: dict[str, Any] = json.loads((self.workdir / "status.json").read_text(encoding="utf-8"))
        return status


def export_manifest(spec: Mapping[str, Any], name: str = "tiny-export") -> dict[str, Any]:
    return {
        "apiVersion": "tuneforge.io/v1alpha1",
        "kind": "ModelExport",
        "metadata": {"name": name, "namespace": "tests"},
        "spec": dict(spec),
    }


class ExportRunner:
    """``runner(spec, *args, env=...)`` runs ``tuneforge export`` in-process and returns an ExportRun;
    ``runner.start(spec, *args, env=...)`` starts it as a subprocess and returns (Popen, ExportRun)."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.numbers = count()

    def _prepare(self, spec: Mapping[str, Any], extra: tuple[str, ...]) -> tuple[list[str], ExportRun]:
        base = self.tmp_path / f"export-{next(self.numbers)}"
        base.mkdir()
        spec_file, termination, workdir = base / "export.yaml", base / "termination-log", base / "work"
        spec_file.write_text(yaml.safe_dump(export_manifest(spec)), encoding="utf-8")
        argv = ["--spec", str(spec_file), "--workdir", str(workdir), *extra]
        return argv, ExportRun(-1, workdir, termination)

    def __call__(
        self, spec: Mapping[str, Any], *extra: str, env: Mapping[str, str] | None = None
    ) -> ExportRun:
        from tuneforge.exporter.main import main

        argv, run = self._prepare(spec, extra)
        with self.monkeypatch.context() as patch:
            for key, value in (env or {}).items():
                patch.setenv(key, value)
            patch.setenv("TUNEFORGE_TERMINATION_MESSAGE_PATH", str(run.termination_file))
            run.exit_code = main(argv)
        return run

    def start(
        self, spec: Mapping[str, Any], *extra: str, env: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[str], ExportRun]:
        argv, run = self._prepare(spec, extra)
        full_env = {
            **os.environ,
            **(env or {}),
            "TUNEFORGE_TERMINATION_MESSAGE_PATH": str(run.termination_file),
        }
        process = subprocess.Popen(
            [str(TUNEFORGE), "export", *argv],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return process, run


@pytest.fixture
def export_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExportRunner:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return ExportRunner(tmp_path, monkeypatch)
