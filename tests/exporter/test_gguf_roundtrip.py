"""Tiny Llama + LoRA -> merged -> f16, q8_0, q4_K_M GGUF and an adapter GGUF, each loaded back by llama.cpp.

Real converters, real quantizer, real llama.cpp: every GGUF is verified
against the merged model in transformers, and a GGUF of another model must
fail verification.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tuneforge.exporter.gguf import (
    TOLERANCES,
    GgufError,
    GgufFile,
    conversion_plan,
    convert_adapter_to_gguf,
    convert_to_gguf,
    llama_cpp_version,
    quantize,
    verify_gguf,
)

# peft asks the model an attribute transformers 5 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

TIMEOUT = 300.0
WEIGHTS = ("model.safetensors", "config.json", "generation_config.json")


def make_adapter_and_merged(base: Path, adapter_dir: Path, merged_dir: Path) -> None:
    """A LoRA adapter with random (non-zero) A and B on every linear layer, and peft's merge of it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    torch.manual_seed(7)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,  # B != 0: the adapter changes the model
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(adapter_dir)
    peft_model.merge_and_unload().save_pretrained(merged_dir)
    # peft writes no tokenizer with the merged model; the converter needs it.
    for path in base.iterdir():
        if path.is_file() and path.name not in WEIGHTS:
            shutil.copy2(path, merged_dir / path.name)


@pytest.fixture(scope="module")
def models(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf-models")
    paths = {"base": tiny_model, "adapter": root / "adapter", "merged": root / "merged"}
    make_adapter_and_merged(tiny_model, paths["adapter"], paths["merged"])
    return paths


@pytest.fixture(scope="module")
def merged_f16(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> GgufFile:
    return convert_to_gguf(
        models["merged"], tmp_path_factory.mktemp("gguf") / "merged-f16.gguf", timeout=TIMEOUT
    )


@pytest.fixture(scope="module")
def base_f16(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> GgufFile:
    return convert_to_gguf(models["base"], tmp_path_factory.mktemp("gguf") / "base-f16.gguf", timeout=TIMEOUT)


def test_f16_gguf_of_the_merged_model_runs_like_it(merged_f16: GgufFile, models: dict[str, Path]) -> None:
    assert merged_f16.qtype == "f16" and merged_f16.path.is_file()
    assert merged_f16.size_bytes == merged_f16.path.stat().st_size > 1_000_000
    assert merged_f16.llama_cpp_version == llama_cpp_version()
    assert llama_cpp_version().startswith("llama.cpp 0c1e570 (llama-cpp-python 0.3.36)")
    # Only the finished file: no temporary left beside it.
    assert [p.name for p in merged_f16.path.parent.iterdir()] == ["merged-f16.gguf"]

    check = verify_gguf(merged_f16.path, models["merged"], qtype="f16")
    assert check.passed, check.summary()
    assert check.max_abs_diff <= check.tolerance.max_abs
    assert check.top_token_gguf == check.top_token_hf
    assert check.generated_ids and len(check.prompt_ids) > 1


@pytest.mark.parametrize("qtype", ["q8_0", "q4_K_M"])
def test_quantized_gguf_runs_like_the_merged_model(
    qtype: str, merged_f16: GgufFile, models: dict[str, Path]
) -> None:
    assert conversion_plan(qtype) == ("f16", qtype)
    out = merged_f16.path.parent / f"merged-{qtype}.gguf"
    quantized = quantize(merged_f16.path, out, qtype, timeout=TIMEOUT)
    assert quantized.path == out and quantized.qtype == qtype
    assert quantized.size_bytes < merged_f16.size_bytes

    check = verify_gguf(out, models["merged"], qtype=qtype)
    assert check.passed, check.summary()
    assert check.max_abs_diff <= check.tolerance.max_abs and check.rel_rms_diff <= check.tolerance.rel_rms
    # Quantization is lossy, and the check sees it: these logits would not pass as f16.
    assert check.max_abs_diff > TOLERANCES["f16"].max_abs


def test_adapter_gguf_applied_to_the_base_gguf_runs_like_the_merged_model(
    base_f16: GgufFile, models: dict[str, Path], tmp_path: Path
) -> None:
    adapter = convert_adapter_to_gguf(
        models["adapter"], models["base"], tmp_path / "adapter-f16.gguf", outtype="f16", timeout=TIMEOUT
    )
    assert adapter.qtype == "f16" and adapter.size_bytes > 0

    check = verify_gguf(base_f16.path, models["merged"], qtype="f16", adapter_gguf=adapter.path)
    assert check.passed, check.summary()


def test_a_gguf_of_another_model_fails_verification(base_f16: GgufFile, models: dict[str, Path]) -> None:
    # The base model without its adapter is "another model" than the merged one.
    with pytest.raises(GgufError) as caught:
        verify_gguf(base_f16.path, models["merged"], qtype="f16")
    err = caught.value
    assert err.reason == "VerificationFailed" and err.exit_code == 6
    assert err.verification is not None and not err.verification.passed
    assert err.verification.max_abs_diff > 10 * err.verification.tolerance.max_abs
    assert err.verification.rel_rms_diff > 1  # as far apart as two unrelated models
    assert "logits differ" in str(err) and "is not published" in str(err)


def test_a_gguf_of_another_type_than_declared_fails_verification(
    merged_f16: GgufFile, models: dict[str, Path]
) -> None:
    with pytest.raises(GgufError) as caught:
        verify_gguf(merged_f16.path, models["merged"], qtype="q8_0")
    assert "the GGUF is f16, expected q8_0" in str(caught.value)


def test_requantizing_a_quantized_gguf_is_refused(merged_f16: GgufFile, tmp_path: Path) -> None:
    q8 = quantize(merged_f16.path, tmp_path / "q8.gguf", "q8_0", timeout=TIMEOUT)
    with pytest.raises(GgufError) as caught:
        quantize(q8.path, tmp_path / "q4.gguf", "q4_K_M", timeout=TIMEOUT)
    assert caught.value.reason == "InvalidModel"
    assert "requantize" in str(caught.value) and "f16" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q8.gguf"]
