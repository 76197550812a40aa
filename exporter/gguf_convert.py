"""Hugging Face model or LoRA adapter -> GGUF, with llama.cpp's own converters.

Each conversion runs ``convert_hf_to_gguf.py`` / ``convert_lora_to_gguf.py``
from the installed tools folder (``gguf_tools``) as a child process, writes
to a hidden temporary name beside ``out`` and renames it into place only when
the converter succeeded: ``out`` is either the whole GGUF or absent. An f16
conversion of a Llama, Mistral or Qwen2 model takes the fast path first
(``gguf_fast``: the converter's metadata, our tensors, the same bytes), which
declines anything else back to the converter.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tuneforge.exporter import gguf_fast, tool_spares
from tuneforge.exporter.gguf_errors import GgufError
from tuneforge.exporter.gguf_fast import CONVERTER, FAST, try_fast
from tuneforge.exporter.gguf_process import prestart_tool, run_tool
from tuneforge.exporter.gguf_tools import llama_cpp_version, tools_dir
from tuneforge.exporter.tool_host import PATH_PREFIX

logger = logging.getLogger(__name__)

CONVERT_TYPES: Final = ("f32", "f16", "bf16", "q8_0")
"""Output types the converters write directly (quantize() makes the rest from f16)."""

DEFAULT_TIMEOUT_S: Final = 3600.0
"""ModelExport.spec.timeoutSeconds' default."""


@dataclass(frozen=True)
class GgufFile:
    """A GGUF file that was written whole."""

    path: Path
    qtype: str
    """Its type: f16, bf16, q8_0, q4_K_M, ... (an adapter's: f32, f16, bf16, q8_0)."""
    size_bytes: int
    llama_cpp_version: str
    seconds: float
    """Wall time of the conversion or quantization."""
    method: str = CONVERTER
    """Who wrote it: "fast" (gguf_fast: the converter's metadata, Tuneforge's tensors) or "llama.cpp"."""


def convert_to_gguf(
    model_dir: Path,
    out: Path,
    *,
    outtype: str = "f16",
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_limit: int | None = None,
) -> GgufFile:
    """Converts the Hugging Face model in ``model_dir`` (config, safetensors, tokenizer) to ``out``.

    Raises GgufError: InvalidModel, UnsupportedArchitecture, UnrecognizedTokenizer,
    OutOfMemory, ConversionTimeout, LlamaCppMissing or ConversionFailed.
    ``memory_limit`` (bytes) caps the converter's address space.
    """
    _check_type(outtype, CONVERT_TYPES, "outtype")
    _check_model_dir(Path(model_dir), "model_dir", ("config.json",))
    tools = tools_dir()
    out, version, started = Path(out), llama_cpp_version(), time.monotonic()
    with partial_file(out) as partial:
        declined = try_fast(
            Path(model_dir),
            partial,
            outtype=outtype,
            tools=tools,
            version=version,
            timeout=timeout,
            memory_limit=memory_limit,
        )
        if declined is None:
            os.replace(partial, out)
            seconds = time.monotonic() - started
            return GgufFile(out, outtype, out.stat().st_size, version, seconds, method=FAST)
    return _convert(
        [str(tools / "convert_hf_to_gguf.py"), str(model_dir), "--outtype", outtype],
        out,
        outtype,
        step=f"convert_hf_to_gguf.py {Path(model_dir).name} --outtype {outtype}",
        timeout=timeout - (time.monotonic() - started),  # one deadline for both attempts
        memory_limit=memory_limit,
    )


@contextmanager
def converters_started_ahead(*, adapter: bool = False) -> Iterator[None]:
    """``prestart_conversions`` for the block's conversions; what they did not use is stopped after it."""
    prestart_conversions(adapter=adapter)
    try:
        yield
    finally:
        tool_spares.discard_all()


def prestart_conversions(*, adapter: bool = False) -> None:
    """Starts the converters' processes now, for the conversions this process will run next.

    They import torch and transformers while the caller fetches and merges; ``convert_to_gguf``
    (and ``convert_adapter_to_gguf`` when ``adapter``) then hand their work to them. Without
    llama.cpp's tools nothing is started: the conversion reports it.
    """
    try:
        tools = tools_dir()
    except GgufError:
        return
    gguf_fast.prestart(tools)
    if adapter:
        gguf_py = f"{PATH_PREFIX}{tools / 'gguf-py'}"
        prestart_tool([sys.executable, str(tools / "convert_lora_to_gguf.py")], preload=[gguf_py])


def convert_adapter_to_gguf(
    adapter_dir: Path,
    base_dir: Path,
    out: Path,
    *,
    outtype: str = "f16",
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_limit: int | None = None,
) -> GgufFile:
    """Converts the PEFT LoRA adapter in ``adapter_dir`` to a GGUF adapter for llama.cpp's ``--lora``.

    ``base_dir`` holds the base model's config.json (weights are not read).
    Raises GgufError like ``convert_to_gguf``.
    """
    _check_type(outtype, CONVERT_TYPES, "outtype")
    _check_model_dir(Path(adapter_dir), "adapter_dir", ("adapter_config.json",))
    _check_model_dir(Path(base_dir), "base_dir", ("config.json",))
    tools = tools_dir()
    argv = [
        str(tools / "convert_lora_to_gguf.py"),
        "--base",
        str(base_dir),
        "--outtype",
        outtype,
        str(adapter_dir),
    ]
    return _convert(
        argv,
        out,
        outtype,
        step=f"convert_lora_to_gguf.py {Path(adapter_dir).name} --outtype {outtype}",
        timeout=timeout,
        memory_limit=memory_limit,
    )


def _convert(
    argv: list[str], out: Path, outtype: str, *, step: str, timeout: float, memory_limit: int | None
) -> GgufFile:
    out = Path(out)
    version = llama_cpp_version()
    started = time.monotonic()
    with partial_file(out) as partial:
        run = run_tool(
            [sys.executable, *argv, "--outfile", str(partial)],
            step=step,
            timeout=timeout,
            version=version,
            memory_limit=memory_limit,
        )
        if not partial.is_file():
            raise GgufError("ConversionFailed", f"{step} exited 0 but wrote no file ({version})")
        os.replace(partial, out)
    logger.info("%s: %.1f s%s", step, run.seconds, ", started ahead" if run.started_ahead else "")
    return GgufFile(out, outtype, out.stat().st_size, version, time.monotonic() - started)


@contextmanager
def partial_file(out: Path) -> Iterator[Path]:
    """A hidden temporary path beside ``out`` (same filesystem, so the rename is atomic), removed on exit."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.{os.getpid()}.partial"
    path.unlink(missing_ok=True)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _check_type(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def _check_model_dir(folder: Path, what: str, needs: tuple[str, ...]) -> None:
    if not folder.is_dir():
        raise GgufError("InvalidModel", f"{what} {folder} is not a folder")
    missing = [name for name in needs if not (folder / name).is_file()]
    if missing:
        raise GgufError("InvalidModel", f"{what} {folder} has no {', '.join(missing)}")
