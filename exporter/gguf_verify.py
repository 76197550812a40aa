"""Verify a GGUF before it is published: llama.cpp must run it as transformers runs the HF model.

One prompt, the same token ids on both sides. llama.cpp (in a child process,
``gguf_probe``) loads the GGUF, evaluates the ids, keeps the logits of the
next token and generates a few tokens; transformers computes the same
logits in float32 from the Hugging Face model. The GGUF passes when

- the logits agree within the limits of its type (``gguf_tolerances``: max
  |Δlogit|, and RMS(Δlogit) relative to the logits' spread);
- the top token agrees, or is a near tie: the HF logit of llama.cpp's top
  token is within the max |Δlogit| limit of the HF maximum (quantization may
  swap two tokens that are within its noise of each other);
- llama.cpp tokenizes a plain sentence into the same ids as the HF tokenizer
  (a GGUF with the wrong pre-tokenizer has the right weights and still
  produces garbage);
- the file is of the declared type, the vocabulary sizes agree, and
  llama.cpp generated tokens.
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from tuneforge.exporter.gguf_convert import DEFAULT_TIMEOUT_S
from tuneforge.exporter.gguf_errors import GgufError
from tuneforge.exporter.gguf_process import run_tool
from tuneforge.exporter.gguf_tolerances import FILE_TYPES, Tolerance, tolerance_for
from tuneforge.exporter.gguf_tools import llama_cpp_version

PROMPT: Final = "The capital of France is"
"""Evaluated on both sides (as the HF tokenizer encodes it, special tokens included)."""
TOKENIZER_TEXT: Final = "Hello world! It's 2024, and llamas can't count: 1234567."
"""Tokenized by both without special tokens: digits, punctuation, contractions, spaces."""
GENERATE_STEPS: Final = 4


@dataclass(frozen=True)
class Verification:
    """What the comparison found. ``passed`` is False when ``problems`` is not empty."""

    qtype: str
    tolerance: Tolerance
    max_abs_diff: float
    rel_rms_diff: float
    """RMS(Δlogit) / std(reference logits)."""
    top_token_hf: int
    top_token_gguf: int
    prompt_ids: list[int]
    generated_ids: list[int]
    generated_text: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED: " + "; ".join(self.problems)
        return (
            f"GGUF {self.qtype} verification {verdict} (max |Δlogit| {self.max_abs_diff:.4g} "
            f"≤ {self.tolerance.max_abs:.4g}, relative RMS {self.rel_rms_diff:.4g} "
            f"≤ {self.tolerance.rel_rms:.4g}, top token {self.top_token_gguf} vs {self.top_token_hf}, "
            f"generated {self.generated_text!r})"
        )


def compare(
    qtype: str,
    tolerance: Tolerance,
    hf_logits: np.ndarray,
    probe: dict[str, Any],
    *,
    prompt_ids: list[int],
    hf_text_ids: list[int],
    expect_file_type: str | None,
) -> Verification:
    """The verdict on one probe (``gguf_probe`` output) against the HF reference. Pure."""
    gguf_logits = np.asarray(probe["first_logits"], dtype=np.float64)
    hf = np.asarray(hf_logits, dtype=np.float64)
    problems: list[str] = []
    if gguf_logits.shape != hf.shape:
        problems.append(f"vocabulary sizes differ: GGUF {gguf_logits.shape[-1]}, HF {hf.shape[-1]}")
        size = min(gguf_logits.shape[-1], hf.shape[-1])
        gguf_logits, hf = gguf_logits[:size], hf[:size]
    diff, rel_rms = _differences(gguf_logits, hf)
    if not math.isfinite(diff):
        problems.append("llama.cpp produced non-finite logits")
    if diff > tolerance.max_abs:
        problems.append(f"logits differ by up to {diff:.4g}, more than the {tolerance.max_abs:.4g} allowed")
    if rel_rms > tolerance.rel_rms:
        problems.append(
            f"logits differ by {rel_rms:.4g} of their spread (RMS), more than the "
            f"{tolerance.rel_rms:.4g} allowed for {qtype}"
        )
    top_hf, top_gguf = int(np.argmax(hf)), int(np.argmax(gguf_logits))
    if top_hf != top_gguf and hf[top_gguf] < hf[top_hf] - tolerance.max_abs:
        problems.append(f"top token differs: GGUF {top_gguf}, HF {top_hf}")
    text_ids = [int(i) for i in probe["text_ids"]]
    if text_ids != hf_text_ids:
        problems.append(
            f"tokenizers disagree on {TOKENIZER_TEXT!r}: llama.cpp {text_ids[:24]}, HF {hf_text_ids[:24]}"
        )
    file_type = FILE_TYPES.get(int(probe["file_type"]), f"type {int(probe['file_type'])}")
    if expect_file_type is not None and file_type != expect_file_type:
        problems.append(f"the GGUF is {file_type}, expected {expect_file_type}")
    generated = [int(i) for i in probe["generated"]]
    if not generated:
        problems.append("llama.cpp generated no token")
    return Verification(
        qtype=qtype,
        tolerance=tolerance,
        max_abs_diff=diff,
        rel_rms_diff=rel_rms,
        top_token_hf=top_hf,
        top_token_gguf=top_gguf,
        prompt_ids=list(prompt_ids),
        generated_ids=generated,
        generated_text=str(probe["generated_text"]),
        problems=problems,
    )


def _differences(gguf_logits: np.ndarray, hf: np.ndarray) -> tuple[float, float]:
    """(max |Δ|, RMS(Δ) / std(hf)); both infinite when llama.cpp's logits are not all finite."""
    if not hf.size or not np.isfinite(gguf_logits).all():
        return math.inf, math.inf
    delta = gguf_logits - hf
    rms = float(np.sqrt(np.mean(delta**2)))
    return float(np.max(np.abs(delta))), rms / max(float(np.std(hf)), 1e-12)


def reference(hf_model_dir: Path) -> tuple[list[int], np.ndarray, list[int]]:
    """The HF side: prompt ids, the float32 logits of the next token, and TOKENIZER_TEXT's ids."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_model_dir)
    prompt_ids = [int(i) for i in tokenizer(PROMPT, add_special_tokens=True)["input_ids"]]
    text_ids = [int(i) for i in tokenizer(TOKENIZER_TEXT, add_special_tokens=False)["input_ids"]]
    model = AutoModelForCausalLM.from_pretrained(hf_model_dir, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids])).logits[0, -1].numpy().astype(np.float64)
    del model
    return prompt_ids, logits, text_ids


def verify_gguf(
    gguf: Path,
    hf_model_dir: Path,
    *,
    qtype: str,
    adapter_gguf: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Verification:
    """Checks that llama.cpp runs ``gguf`` (plus ``adapter_gguf``) like transformers runs ``hf_model_dir``.

    Without an adapter, ``qtype`` is the GGUF's type (checked against the file).
    With one, ``gguf`` is the base model's f16 GGUF, ``qtype`` the adapter's
    type, and ``hf_model_dir`` the merged model. Returns the passing
    Verification; raises GgufError VerificationFailed (with ``.verification``)
    when it fails, or when llama.cpp cannot load or run the file.
    """
    gguf = Path(gguf)
    prompt_ids, hf_logits, hf_text_ids = reference(Path(hf_model_dir))
    tolerance = tolerance_for(qtype, hf_logits, adapter=adapter_gguf is not None)
    result = _probe(gguf, prompt_ids, adapter_gguf, timeout)
    verification = compare(
        qtype,
        tolerance,
        hf_logits,
        result,
        prompt_ids=prompt_ids,
        hf_text_ids=hf_text_ids,
        expect_file_type=None if adapter_gguf else qtype,
    )
    if not verification.passed:
        raise GgufError(
            "VerificationFailed",
            f"{gguf.name} is not published: {verification.summary()}",
            verification=verification,
        )
    return verification


def _probe(gguf: Path, ids: list[int], adapter: Path | None, timeout: float) -> dict[str, Any]:
    version = llama_cpp_version()
    with tempfile.TemporaryDirectory(prefix="gguf-probe-") as scratch:
        out = Path(scratch) / "probe.npz"
        argv = [sys.executable, "-m", "tuneforge.exporter.gguf_probe", str(gguf), str(out)]
        argv += ["--ids", ",".join(map(str, ids)), "--text", TOKENIZER_TEXT, "--steps", str(GENERATE_STEPS)]
        if adapter is not None:
            argv += ["--lora", str(adapter)]
        step = f"llama.cpp loading {gguf.name}" + (f" with {Path(adapter).name}" if adapter else "")
        try:
            run_tool(argv, step=step, timeout=timeout, version=version)
        except GgufError as err:
            if err.reason in ("OutOfMemory", "ConversionTimeout"):
                raise
            raise GgufError(
                "VerificationFailed",
                f"{gguf.name} is not published: {version} could not run it. {err.message} "
                "(A crash at the first decode of quantized files is the mark of a llama-cpp-python built "
                "for another CPU: build it with CMAKE_ARGS=-DGGML_NATIVE=OFF.)",
            ) from err
        with np.load(out) as data:
            return {key: data[key] for key in data.files}
