"""Building an export's artifact in the work folder: adapter as is, merged, GGUF, adapter GGUF, zip.

Inputs are fetched only when a step needs them, into ``<workdir>/inputs``;
what each step writes stays under ``<workdir>/build``. A merged model comes
from the merged-model cache when it holds the same merge (see
``tuneforge.exporter.cache``), else from the streaming merge. Every GGUF is
verified against the merged model before it is handed back; one that fails
is not published (GgufError VerificationFailed).

``timeoutSeconds`` bounds conversion, quantization and verification
together: each step gets what is left of it.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuneforge.exporter.archive import zip_folder
from tuneforge.exporter.artifacts import ArtifactKind
from tuneforge.exporter.merge import merge_adapter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    """The artifact, ready to publish."""

    path: Path
    """A folder (adapter, merged) or a file (GGUF, zip)."""
    folder: Path | None
    """The unarchived folder of a folder format (what Hub repositories get)."""
    merged: Path | None
    """A merged model made (or fetched) on the way, for the merged-model cache."""
    merged_was_cached: bool
    llama_cpp_version: str | None
    verification: str | None
    """The GGUF verification's summary."""


@dataclass
class Inputs:
    """Fetches inputs on first use."""

    workdir: Path
    fetch_adapter: Callable[[Path], Path]
    fetch_base: Callable[[Path], Path]
    fetch_cached_merge: Callable[[Path], Path | None]
    """Fills the folder from the merged-model cache; None when the cache does not hold this merge."""
    _adapter: Path | None = None
    _base: Path | None = None

    def adapter(self) -> Path:
        if self._adapter is None:
            self._adapter = self.fetch_adapter(_emptied(self.workdir / "inputs" / "adapter"))
        return self._adapter

    def base(self) -> Path:
        if self._base is None:
            self._base = self.fetch_base(_emptied(self.workdir / "inputs" / "base"))
        return self._base

    def drop_base(self) -> None:
        """Frees the disk the base model takes once nothing needs it (GGUF exports need room)."""
        if self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)
            self._base = None


def _emptied(folder: Path) -> Path:
    """``folder``, without what an earlier run in the same work folder left there."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder


class Deadline:
    """What is left of ``timeoutSeconds``, counted from the first GGUF step (fetching and merging are not)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end: float | None = None

    def left(self, step: str) -> float:
        now = self._clock()
        if self._end is None:
            self._end = now + self.seconds
        remaining = self._end - now
        if remaining <= 0:
            from tuneforge.exporter.gguf import GgufError

            raise GgufError(
                "ConversionTimeout",
                f"spec.timeoutSeconds ({self.seconds:g} s) ran out before {step}; raise spec.timeoutSeconds",
            )
        return remaining


def build(kind: ArtifactKind, inputs: Inputs, deadline: Deadline, note: Callable[[str], None]) -> Built:
    """Makes the artifact of ``kind`` under ``<workdir>/build``."""
    out = inputs.workdir / "build"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if kind.format == "adapter":
        folder = inputs.adapter()
        return _finish(kind, folder, out, merged=None, cached=False)
    if kind.format == "merged":
        merged, cached = _merged(inputs, out, note)
        return _finish(kind, merged, out, merged=merged, cached=cached)
    from tuneforge.exporter.gguf_convert import converters_started_ahead

    # The converters import torch and transformers (4 s) while the sources are fetched and merged.
    with converters_started_ahead(adapter=kind.format == "adapter-gguf"):
        merged, cached = _merged(inputs, out, note)
        if kind.format == "gguf":
            return _gguf(kind, inputs, merged, cached, out, deadline, note)
        return _adapter_gguf(kind, inputs, merged, cached, out, deadline, note)


def _finish(kind: ArtifactKind, folder: Path, out: Path, *, merged: Path | None, cached: bool) -> Built:
    path = zip_folder(folder, out / kind.name) if kind.archive == "zip" else folder
    return Built(path, folder, merged, cached, None, None)


def _merged(inputs: Inputs, out: Path, note: Callable[[str], None]) -> tuple[Path, bool]:
    target = out / "merged"
    if inputs.fetch_cached_merge(target) is not None:
        note("using the merged model from the merged-model cache")
        return target, True
    adapter, base = inputs.adapter(), inputs.base()
    note("merging the adapter into the base model")
    result = merge_adapter(base, adapter, target)
    log.info(
        "merged %d LoRA modules (%d tensors replaced) into %d tensors, %.2f GB, in %.1f s",
        result.lora_modules,
        result.replaced,
        result.tensors,
        result.bytes / 1e9,
        result.seconds,
    )
    return target, False


def _gguf(
    kind: ArtifactKind,
    inputs: Inputs,
    merged: Path,
    cached: bool,
    out: Path,
    deadline: Deadline,
    note: Callable[[str], None],
) -> Built:
    from tuneforge.exporter import gguf

    inputs.drop_base()
    qtype = kind.quantization or "q8_0"
    outtype, quant_type = gguf.conversion_plan(qtype)
    note(f"converting the merged model to GGUF ({outtype})")
    converted_path = out / (kind.name if quant_type is None else f"model-{outtype}.gguf")
    final = gguf.convert_to_gguf(
        merged, converted_path, outtype=outtype, timeout=deadline.left("the conversion")
    )
    if quant_type is not None:
        note(f"quantizing to {quant_type}")
        final = gguf.quantize(
            converted_path, out / kind.name, quant_type, timeout=deadline.left("quantizing")
        )
        converted_path.unlink(missing_ok=True)
    note(f"verifying {kind.name} with llama.cpp")
    check = gguf.verify_gguf(final.path, merged, qtype=qtype, timeout=deadline.left("the verification"))
    log.info("%s", check.summary())
    return Built(final.path, None, merged, cached, final.llama_cpp_version, check.summary())


def _adapter_gguf(
    kind: ArtifactKind,
    inputs: Inputs,
    merged: Path,
    cached: bool,
    out: Path,
    deadline: Deadline,
    note: Callable[[str], None],
) -> Built:
    from tuneforge.exporter import gguf

    qtype = kind.quantization or "f16"
    note(f"converting the adapter to GGUF ({qtype})")
    adapter = gguf.convert_adapter_to_gguf(
        inputs.adapter(),
        inputs.base(),
        out / kind.name,
        outtype=qtype,
        timeout=deadline.left("the conversion"),
    )
    # Verification applies the adapter GGUF to an f16 GGUF of the base and compares with the merged model.
    note("converting the base model to GGUF (f16) to verify the adapter")
    base = gguf.convert_to_gguf(
        inputs.base(), out / "base-f16.gguf", outtype="f16", timeout=deadline.left("the base conversion")
    )
    inputs.drop_base()
    note(f"verifying {kind.name} with llama.cpp")
    check = gguf.verify_gguf(
        base.path, merged, qtype=qtype, adapter_gguf=adapter.path, timeout=deadline.left("the verification")
    )
    base.path.unlink(missing_ok=True)
    log.info("%s", check.summary())
    return Built(adapter.path, None, merged, cached, adapter.llama_cpp_version, check.summary())
