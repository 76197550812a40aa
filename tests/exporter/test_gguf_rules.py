"""The pure parts of the GGUF steps: failure mapping, verification verdict, conversion plan, install."""

from __future__ import annotations

import io
import json
import signal
import tarfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuneforge import exitcodes
from tuneforge.exporter.gguf import TOLERANCES, Tolerance, conversion_plan
from tuneforge.exporter.gguf_errors import STDERR_TAIL, classify
from tuneforge.exporter.gguf_tolerances import tolerance_for
from tuneforge.exporter.gguf_tools import MARKER, install
from tuneforge.exporter.gguf_verify import compare

VERSION = "llama.cpp abc1234 (llama-cpp-python 9.9.9)"


def test_classify_reads_known_failures() -> None:
    arch = classify("step", 1, "ERROR:hf-to-gguf:Model FooForCausalLM is not supported\n", version=VERSION)
    assert arch.reason == "UnsupportedArchitecture" and "'FooForCausalLM'" in arch.message

    oom = classify("step", 1, "Traceback ...\nMemoryError\n", version=VERSION)
    assert (oom.reason, oom.exit_code) == ("OutOfMemory", exitcodes.OUT_OF_MEMORY)

    blas = classify(
        "step", 1, "OpenBLAS error: Memory allocation still failed after 10 retries", version=VERSION
    )
    assert blas.reason == "OutOfMemory"

    killed = classify("step", -signal.SIGKILL, "", version=VERSION)
    assert killed.reason == "OutOfMemory" and "signal SIGKILL" in killed.message

    requant = classify(
        "q",
        1,
        "llama_model_quantize: failed to quantize: requantizing from type q8_0 is disabled",
        version=VERSION,
    )
    assert requant.reason == "InvalidModel" and requant.exit_code == exitcodes.INVALID_INPUT


def test_an_unknown_failure_keeps_the_end_of_stderr_and_may_be_retried() -> None:
    stderr = "x" * 5000 + "\nValueError: the real cause"
    err = classify("convert", 1, stderr, version=VERSION)
    assert (err.reason, err.exit_code) == ("ConversionFailed", exitcodes.FAILED)
    assert err.message.endswith("ValueError: the real cause") and len(err.message) < STDERR_TAIL + 200
    assert "exit 1" in err.message and VERSION in err.message

    crash = classify("probe", -signal.SIGSEGV, "", version=VERSION)
    assert "signal SIGSEGV" in crash.message and "no output on stderr" in crash.message


def test_secrets_in_a_tool_message_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "verysecretvalue")
    err = classify("convert", 1, "failed reading s3 with verysecretvalue", version=VERSION)
    assert "verysecretvalue" not in str(err)


def test_conversion_plan() -> None:
    assert conversion_plan("f16") == ("f16", None)
    assert conversion_plan("bf16") == ("bf16", None)
    assert conversion_plan("q8_0") == ("f16", "q8_0")
    assert conversion_plan("q5_K_M") == ("f16", "q5_K_M")
    with pytest.raises(ValueError, match="'q3_K' is not one of"):
        conversion_plan("q3_K")
    # Every quantization the ModelExport API accepts has a plan and a tolerance.
    from typing import get_args

    from tuneforge.api.modelexport import Quantization

    for qtype in get_args(Quantization):
        assert conversion_plan(qtype)[0] in ("f16", "bf16")
        assert qtype in TOLERANCES


def probe_result(logits: np.ndarray, **overrides: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "first_logits": logits.astype(np.float32),
        "generated": np.array([5, 6]),
        "generated_text": "ok",
        "text_ids": np.array([1, 2, 3]),
        "file_type": 1,
        "architecture": "llama",
    }
    result.update(overrides)
    return result


def verdict(hf: np.ndarray, probe: dict[str, Any], max_abs: float = 0.01, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"prompt_ids": [1, 2], "hf_text_ids": [1, 2, 3], "expect_file_type": "f16"}
    options.update(kwargs)
    return compare("f16", Tolerance(max_abs, rel_rms=0.05), hf, probe, **options)


def test_compare_passes_within_tolerance_and_fails_beyond() -> None:
    rng = np.random.default_rng(0)
    hf = rng.normal(size=100)
    hf[10] = 5.0
    close = verdict(hf, probe_result(hf + 0.005))
    assert close.passed and close.max_abs_diff == pytest.approx(0.005, abs=1e-6)
    # One outlier: within the relative RMS limit, beyond the max |Δ| limit.
    spike = hf.copy()
    spike[3] += 0.02
    assert [p[:21] for p in verdict(hf, probe_result(spike)).problems] == ["logits differ by up t"]
    # Noise everywhere: within max |Δ| (0.5 allowed), beyond the relative RMS limit.
    noisy = verdict(hf, probe_result(hf + rng.uniform(-0.2, 0.2, size=100)), max_abs=0.5)
    assert len(noisy.problems) == 1 and "of their spread (RMS)" in noisy.problems[0]
    assert noisy.rel_rms_diff > 0.05


def test_compare_accepts_a_near_tie_of_top_tokens_but_not_a_different_top_token() -> None:
    hf = np.zeros(50)
    hf[3], hf[4] = 2.0, 1.995
    tie = hf.copy()
    tie[4] += 0.008  # llama.cpp's top is 4, HF's is 3, 0.005 apart: a near tie within 0.01
    assert verdict(hf, probe_result(tie)).passed
    # Every logit within 1.0 of HF's, yet llama.cpp's top token is 1.5 below HF's top: not a near tie.
    hf[4] = 0.5
    swapped = hf.copy()
    swapped[3], swapped[4] = 1.2, 1.4
    result = compare(
        "f16",
        Tolerance(1.0, rel_rms=10.0),
        hf,
        probe_result(swapped),
        prompt_ids=[1],
        hf_text_ids=[1, 2, 3],
        expect_file_type="f16",
    )
    assert result.problems == ["top token differs: GGUF 4, HF 3"]


def test_compare_checks_vocabulary_tokenizer_file_type_finiteness_and_generation() -> None:
    hf = np.linspace(-1, 1, 20)
    assert "vocabulary sizes differ: GGUF 21, HF 20" in verdict(hf, probe_result(np.append(hf, 0))).problems
    assert any(
        "tokenizers disagree" in p for p in verdict(hf, probe_result(hf, text_ids=np.array([1, 3]))).problems
    )
    assert "the GGUF is q8_0, expected f16" in verdict(hf, probe_result(hf, file_type=7)).problems
    assert verdict(hf, probe_result(hf, file_type=7), expect_file_type=None).passed
    nan = hf.copy()
    nan[0] = np.nan
    assert verdict(hf, probe_result(nan)).problems[0] == "llama.cpp produced non-finite logits"
    assert "llama.cpp generated no token" in verdict(hf, probe_result(hf, generated=np.array([]))).problems


def test_max_abs_limits_grow_with_the_spread_of_the_logits() -> None:
    small = np.random.default_rng(1).normal(scale=0.3, size=1000)
    assert tolerance_for("q8_0", small) == TOLERANCES["q8_0"]
    wide = tolerance_for("q8_0", small * 10)
    assert wide.max_abs == pytest.approx(TOLERANCES["q8_0"].max_abs * np.std(small * 10))
    assert wide.rel_rms == TOLERANCES["q8_0"].rel_rms
    # Looser for coarser types, in both measures.
    order = ["f32", "f16", "bf16", "q8_0", "q6_K", "q5_K_M", "q4_K_M"]
    for finer, coarser in zip(order, order[1:], strict=False):
        assert TOLERANCES[finer].max_abs <= TOLERANCES[coarser].max_abs, (finer, coarser)
        assert TOLERANCES[finer].rel_rms <= TOLERANCES[coarser].rel_rms, (finer, coarser)
    with pytest.raises(ValueError, match="no verification tolerance for 'q4_K_M'"):
        tolerance_for("q4_K_M", small, adapter=True)


def fake_sdist(path: Path, version: str) -> Path:
    """A source archive laid out like llama-cpp-python's, with a few files."""
    top = f"llama_cpp_python-{version}"
    files = {
        f"{top}/vendor/llama.cpp/convert_hf_to_gguf.py": "print('hf')\n",
        f"{top}/vendor/llama.cpp/convert_lora_to_gguf.py": "print('lora')\n",
        f"{top}/vendor/llama.cpp/LICENSE": "MIT\n",
        f"{top}/vendor/llama.cpp/conversion/__init__.py": "",
        f"{top}/vendor/llama.cpp/gguf-py/gguf/__init__.py": "",
        f"{top}/vendor/llama.cpp/gguf-py/tests/test_x.py": "",
        f"{top}/vendor/llama.cpp/models/templates/a.jinja": "{{ x }}",
        f"{top}/vendor/llama.cpp/models/ggml-vocab-big.gguf": "big",
        f"{top}/vendor/llama.cpp/src/llama.cpp": "// C++",
        f"{top}/.git/modules/vendor/llama.cpp/HEAD": "0123456789abcdef0123456789abcdef01234567\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_install_unpacks_only_the_converters_and_records_the_commit(tmp_path: Path) -> None:
    version = metadata.version("llama-cpp-python")
    sdist = fake_sdist(tmp_path / f"llama_cpp_python-{version}.tar.gz", version)

    folder = install(sdist, tmp_path / "root")

    assert folder == tmp_path / "root" / f"llama-cpp-python-{version}"
    found = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.suffix != ".pyc"
    )
    assert found == [
        "LICENSE",
        MARKER,
        "conversion/__init__.py",
        "convert_hf_to_gguf.py",
        "convert_lora_to_gguf.py",
        "gguf-py/gguf/__init__.py",
        "models/templates/a.jinja",
    ]
    # Compiled at install time: a read-only image could not cache the bytecode.
    assert list((folder / "conversion" / "__pycache__").glob("__init__.*.pyc"))
    record = json.loads((folder / MARKER).read_text())
    assert record["llamaCppCommit"] == "0123456789abcdef0123456789abcdef01234567"
    assert record["llamaCppPython"] == version
    # Installed once: a second call leaves it alone, and no staging folder remains.
    assert install(sdist, tmp_path / "root") == folder
    assert [p.name for p in (tmp_path / "root").iterdir()] == [folder.name]


def test_install_refuses_an_archive_without_the_converters(tmp_path: Path) -> None:
    from tuneforge.exporter.gguf_errors import GgufError

    version = metadata.version("llama-cpp-python")
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz"):
        pass
    with pytest.raises(GgufError, match="lacks convert_hf_to_gguf.py"):
        install(tmp_path / "empty.tar.gz", tmp_path / "root")
    assert not (tmp_path / "root" / f"llama-cpp-python-{version}").exists()
