"""The offline tiny model: exact tokenization, single-token chat markers, a model that generates."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge import tinymodel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def sample_texts() -> list[str]:
    texts = []
    for path in sorted(EXAMPLES.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "messages" in record:
                texts += [m["content"] for m in record["messages"]]
            else:
                texts += [record["instruction"], record["input"], record["output"]]
    return [t for t in texts if t]


def test_every_sample_text_round_trips_and_matches_sentencepiece(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    processor = spm.SentencePieceProcessor(model_file=str(tiny_model / "tokenizer.model"))
    texts = sample_texts() + [" leading space", "tabs\tand  double  spaces\n", "unseen: Zürich 東京 🙂"]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
        # llama.cpp reads tokenizer.model: the same ids there mean the same model after conversion.
        assert processor.encode(text) == ids


def test_chat_markers_are_single_control_tokens(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    processor = spm.SentencePieceProcessor(model_file=str(tiny_model / "tokenizer.model"))
    for marker in (tinymodel.IM_START, tinymodel.IM_END):
        (token,) = tokenizer(marker)["input_ids"]
        assert processor.is_control(token), f"{marker} must be a control symbol, not user-defined"
        assert processor.id_to_piece(token) == marker
    assert tokenizer.eos_token == tinymodel.IM_END
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.unk_token) == ("<pad>", "<s>", "<unk>")
    assert tokenizer("hello")["input_ids"][0] != tokenizer.bos_token_id  # no BOS added, as llama.cpp is told


def test_chat_template_is_chatml_with_generation_marks(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "Lima."},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCapital of Peru?<|im_end|>\n"
        "<|im_start|>assistant\nLima.<|im_end|>\n"
    )
    encoded = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "Lima.<|im_end|>"
    prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_the_model_loads_and_generates(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = model.config
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("llama", 256, 2)
    assert config.hidden_size % 256 == 0  # llama.cpp K-quants
    assert config.vocab_size == len(tokenizer)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_build_is_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    assert tinymodel.main([str(tmp_path / "again")]) == 0
    assert digests(tmp_path / "again") == digests(tiny_model)


def test_a_different_seed_changes_the_weights_only(tiny_model: Path, tmp_path: Path) -> None:
    tinymodel.build_tiny_model(tmp_path / "other", seed=1)
    same, other = digests(tiny_model), digests(tmp_path / "other")
    assert [k for k in same if same[k] != other[k]] == ["model.safetensors"]


def test_missing_sample_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tinymodel.main([str(tmp_path / "m"), "--data", str(tmp_path / "nowhere")]) == 3
    assert "no *.jsonl sample data in" in capsys.readouterr().err
