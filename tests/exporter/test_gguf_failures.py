"""The converters' real failures, mapped to reasons a user can act on.

Each case makes llama.cpp's converter fail for real (an architecture it does
not know, a BPE tokenizer whose pre-tokenizer it does not recognise, a
deadline, a memory cap) and checks the GgufError: reason, exit code, a
message that says what to do, and no half-written GGUF left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuneforge import exitcodes
from tuneforge.exporter import tool_spares
from tuneforge.exporter.gguf import (
    GgufError,
    convert_adapter_to_gguf,
    convert_to_gguf,
    llama_cpp_version,
    prestart_conversions,
)
from tuneforge.exporter.gguf_tools import ROOT_ENV

TIMEOUT = 300.0


def copy_model(tiny_model: Path, dest: Path, *, tokenizer: bool = True) -> Path:
    dest.mkdir()
    for path in tiny_model.iterdir():
        if tokenizer or not path.name.startswith(("tokenizer", "chat_template")):
            shutil.copy2(path, dest / path.name)
    return dest


def only_the_model_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_an_architecture_llama_cpp_does_not_know(tiny_model: Path, tmp_path: Path) -> None:
    model = copy_model(tiny_model, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config.update(architectures=["TuneforgeToyForCausalLM"], model_type="tuneforge-toy")
    (model / "config.json").write_text(json.dumps(config))
    before = only_the_model_files(tmp_path)

    with pytest.raises(GgufError) as caught:
        convert_to_gguf(model, tmp_path / "out.gguf", timeout=TIMEOUT)

    err = caught.value
    assert (err.reason, err.exit_code) == ("UnsupportedArchitecture", exitcodes.UNSUPPORTED)
    assert "'TuneforgeToyForCausalLM'" in str(err) and llama_cpp_version() in str(err)
    assert "format 'merged'" in str(err)
    assert only_the_model_files(tmp_path) == before


def bpe_tokenizer_with_unknown_pre_tokenizer(dest: Path) -> None:
    """A byte-level BPE tokenizer whose pre-tokenizer (a custom split) no llama.cpp release lists."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tuneforge.tinymodel import corpus_lines, default_data_dir

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[A-Za-z]{1,3}|\d|[^A-Za-z\d]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus_lines(default_data_dir()), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(dest)


@pytest.fixture(params=["cold", "started-ahead"])
def converters(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test twice: converters started when needed, and started ahead (``prestart_conversions``)."""
    yield request.param
    tool_spares.discard_all()


def start_converters(how: str) -> None:
    if how == "started-ahead":
        prestart_conversions()
        assert tool_spares.wait_ready()


def test_a_tokenizer_llama_cpp_does_not_recognise(tiny_model: Path, tmp_path: Path, converters: str) -> None:
    model = copy_model(tiny_model, tmp_path / "model", tokenizer=False)
    bpe_tokenizer_with_unknown_pre_tokenizer(model)
    start_converters(converters)

    with pytest.raises(GgufError) as caught:
        convert_to_gguf(model, tmp_path / "out.gguf", timeout=TIMEOUT)

    err = caught.value
    assert (err.reason, err.exit_code) == ("UnrecognizedTokenizer", exitcodes.UNSUPPORTED)
    message = str(err)
    assert "BPE pre-tokenizer" in message and llama_cpp_version() in message
    assert "chkhsh " in message  # the hash a llama.cpp maintainer or a newer release would need
    assert "Keep the base model's tokenizer files unchanged" in message
    # No GGUF, and nothing of the two steps (the vocabulary, its stop file for the tensor writer) left.
    assert only_the_model_files(tmp_path) == ["model"]
    assert not any("convert_hf_to_gguf" in target for target in tool_spares.waiting())


def test_a_conversion_past_its_deadline_is_stopped(tiny_model: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(GgufError) as caught:
        convert_to_gguf(tiny_model, tmp_path / "out.gguf", timeout=0.5)
    elapsed = time.monotonic() - started

    err = caught.value
    assert (err.reason, err.exit_code) == ("ConversionTimeout", exitcodes.TIMED_OUT)
    assert "0.5 s" in str(err) and "spec.timeoutSeconds" in str(err)
    assert elapsed < 0.5 + 6  # SIGTERM, at most the grace period, SIGKILL
    assert only_the_model_files(tmp_path) == []
    assert not converters_running(tmp_path)


def converters_running(marker: Path) -> bool:
    """Whether any process still has ``marker`` on its command line."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(marker) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    return True
            except OSError:
                continue
    return False


def test_a_converter_out_of_memory_is_reported_as_such(
    tiny_model: Path, tmp_path: Path, converters: str
) -> None:
    # 300 MiB of address space: too little for the converter's own imports, let alone a real model.
    # Which allocation fails first (Python's MemoryError, a shared library that
    # cannot be mapped, OpenBLAS's buffers) varies by machine; every one is OutOfMemory.
    # A converter started ahead is already past its imports: its next allocation fails.
    start_converters(converters)
    with pytest.raises(GgufError) as caught:
        convert_to_gguf(tiny_model, tmp_path / "out.gguf", timeout=TIMEOUT, memory_limit=300 << 20)

    err = caught.value
    assert (err.reason, err.exit_code) == ("OutOfMemory", exitcodes.OUT_OF_MEMORY)
    assert "spec.resources.memory" in str(err)
    assert only_the_model_files(tmp_path) == []
    assert not any("convert_hf_to_gguf" in target for target in tool_spares.waiting())  # it failed


def test_an_adapter_folder_without_adapter_config(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(GgufError) as caught:
        convert_adapter_to_gguf(tmp_path, tiny_model, tmp_path / "a.gguf", outtype="f16", timeout=TIMEOUT)
    assert (caught.value.reason, caught.value.exit_code) == ("InvalidModel", exitcodes.INVALID_INPUT)
    assert "has no adapter_config.json" in str(caught.value)


def test_a_model_folder_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(GgufError, match="is not a folder") as caught:
        convert_to_gguf(tmp_path / "nowhere", tmp_path / "out.gguf", timeout=TIMEOUT)
    assert caught.value.reason == "InvalidModel"


def test_an_output_type_the_converter_does_not_write(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outtype 'q4_K_M' is not one of f32, f16, bf16, q8_0"):
        convert_to_gguf(tiny_model, tmp_path / "out.gguf", outtype="q4_K_M", timeout=TIMEOUT)


def test_missing_converters_say_how_to_install_them(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "empty"))
    with pytest.raises(GgufError) as caught:
        convert_to_gguf(tiny_model, tmp_path / "out.gguf", timeout=TIMEOUT)
    assert (caught.value.reason, caught.value.exit_code) == ("LlamaCppMissing", exitcodes.UNSUPPORTED)
    assert "tuneforge llama-cpp install" in str(caught.value)
    assert os.fspath(tmp_path / "empty") in str(caught.value)
