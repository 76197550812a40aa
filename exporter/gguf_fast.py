"""The fast f16 path of ``convert_to_gguf``: llama.cpp's converter for metadata, Tuneforge for tensors.

llama.cpp's ``convert_hf_to_gguf.py`` casts every tensor through torch on one
thread (about 16 s/GB for bf16 here). For the architectures whose tensor
handling ``gguf_tensors`` restates (Llama, Mistral, Qwen2) and an f16 output,
the exporter runs the converter with ``--vocab-only`` (metadata and
vocabulary) and, beside it, ``gguf_fast_main``, a child process that plans
the tensors meanwhile and then writes that metadata with the tensors, bit for
bit as the converter would: tests/exporter/test_gguf_fast.py checks that both
files are byte-identical.
Both run in processes started ahead (``prestart``, ``tool_spares``) when the
pipeline started them while it fetched and merged: the converter's own
start-up (torch and transformers imports, 4 s) is then off the clock, and
the converter's spare packs metadata arrays with ``gguf_pack``.

Everything else (another architecture or output type, a quantized
checkpoint, a tensor the rules do not cover, a converter whose metadata is
not what the plan assumed) is *declined*, with the reason logged, and the
converter does the whole conversion as before (``GgufFile.method`` says which
path wrote a file). Failures are not declines: a converter failure during
``--vocab-only`` (an unrecognised tokenizer, memory, the deadline) is reported
exactly as from a full conversion, and the fast path's own errors are
``ConversionFailed``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from tuneforge.exporter.gguf_fast_main import stop_file
from tuneforge.exporter.gguf_handover import complete, handover_name
from tuneforge.exporter.gguf_process import prestart_tool, run_tool
from tuneforge.exporter.gguf_tensors import Unsupported, model_shape
from tuneforge.exporter.tool_host import PATH_PREFIX

FAST: Final = "fast"
"""GgufFile.method of a file written by the fast path."""
CONVERTER: Final = "llama.cpp"
"""GgufFile.method of a file written by llama.cpp's converter (or quantizer) alone."""

CONVERTER_PRELOAD: Final = (
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.llama.configuration_llama",
)
"""What the converter imports lazily for a Llama (AutoConfig, AutoTokenizer): loaded by its spare too."""
CONVERTER_HOOKS: Final = "tuneforge.exporter.gguf_converter_preload"
"""Puts our hooks into the spare's gguf-py: the vectorised metadata packer (``gguf_pack``) and the
vocabulary's early handover (``gguf_handover``)."""

logger = logging.getLogger(__name__)


def refusal(model_dir: Path, outtype: str) -> str | None:
    """Why the fast path does not apply, from config.json alone; None when it may (the child checks more)."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"config.json is unreadable ({err})"
    if not isinstance(config, dict):
        return "config.json is not an object"
    if (model_dir / "hf_quant_config.json").exists():
        return "the checkpoint is quantized (hf_quant_config.json)"
    try:
        model_shape(config, outtype)
    except Unsupported as why:
        return str(why)
    return None


def try_fast(
    model_dir: Path,
    partial: Path,
    *,
    outtype: str,
    tools: Path,
    version: str,
    timeout: float,
    memory_limit: int | None,
) -> str | None:
    """Writes the GGUF of ``model_dir`` to ``partial``; None when written, else why not (nothing written).

    Raises GgufError as ``convert_to_gguf`` does.
    """
    declined = refusal(model_dir, outtype)
    if declined is None:
        declined = _run_child(model_dir, partial, outtype, tools, version, timeout, memory_limit)
    if declined is not None:
        partial.unlink(missing_ok=True)
        logger.info("%s: llama.cpp's converter writes the tensors too: %s", model_dir.name, declined)
    return declined


def _run_child(
    model_dir: Path,
    partial: Path,
    outtype: str,
    tools: Path,
    version: str,
    timeout: float,
    memory_limit: int | None,
) -> str | None:
    """Both steps side by side: the writer plans the tensors while the converter writes the vocabulary,
    which reaches the writer as soon as the converter has closed it (``gguf_handover``)."""
    started = time.monotonic()
    vocab = partial.with_name(partial.name + ".vocab")
    converted = handover_name(vocab)
    stop = stop_file(vocab)
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gguf-tensors") as pool:
            tensors = pool.submit(
                run_tool,
                [*tensors_tool(), str(model_dir), "--outtype", outtype, "--outfile", str(partial)]
                + ["--vocab-file", str(vocab), "--tools", str(tools), "--wait-for-vocab", f"{timeout:g}"],
                step=f"tuneforge's tensor writer for {model_dir.name} --outtype {outtype}",
                timeout=timeout,
                version=version,
                memory_limit=memory_limit,
            )
            try:
                vocab_run = run_tool(
                    [*vocab_only_tool(tools), str(model_dir), "--outtype", outtype, "--vocab-only"]
                    + ["--outfile", str(converted)],
                    step=f"convert_hf_to_gguf.py {model_dir.name} --outtype {outtype} --vocab-only",
                    timeout=timeout,
                    version=version,
                    memory_limit=memory_limit,
                )
                complete(vocab)
            except BaseException:
                stop.touch()  # the writer ends without writing; the converter's error is the one raised
                raise
            run = tensors.result()
    finally:
        for path in (vocab, converted, stop):
            path.unlink(missing_ok=True)
    result = _last_json_line(run.stdout)
    if result.get("written") and partial.is_file():
        logger.info(
            "%s: f16 GGUF written by the fast path, %d tensors, %.2f s (llama.cpp's --vocab-only: %.3f s%s;"
            " the tensor writer planned %.3f s, waited for the vocabulary %.3f s, wrote %.3f s)",
            model_dir.name,
            result.get("tensors", 0),
            time.monotonic() - started,
            vocab_run.seconds,
            ", converter started ahead" if vocab_run.started_ahead else "",
            result.get("plan_seconds", 0.0),
            result.get("vocab_wait_seconds", 0.0),
            result.get("write_seconds", 0.0),
        )
        return None
    return str(result.get("declined") or f"the fast path gave no result: {run.stdout[-500:]!r}")


def vocab_only_tool(tools: Path) -> list[str]:
    """The command (without arguments) of the fast path's first step: llama.cpp's converter."""
    return [sys.executable, str(tools / "convert_hf_to_gguf.py")]


def tensors_tool() -> list[str]:
    """The command (without arguments) of its second: Tuneforge's tensor writer."""
    return [sys.executable, "-m", "tuneforge.exporter.gguf_fast_main"]


def prestart(tools: Path) -> None:
    """Starts both steps' processes now, for a conversion to come (``gguf_process.prestart_tool``)."""
    preload = (f"{PATH_PREFIX}{tools / 'gguf-py'}", CONVERTER_HOOKS, *CONVERTER_PRELOAD)
    prestart_tool(vocab_only_tool(tools), preload=preload)
    prestart_tool(tensors_tool(), preload=_tensors_preload(tools))


def _tensors_preload(tools: Path) -> tuple[str, ...]:
    """What the tensor writer imports when it runs (llama.cpp's gguf-py, numpy): loaded by its spare."""
    return (
        f"{PATH_PREFIX}{tools / 'gguf-py'}",
        "gguf",
        "tuneforge.exporter.gguf_fast_data",
        "tuneforge.exporter.gguf_fast_header",
    )


def _last_json_line(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return result if isinstance(result, dict) else {}
