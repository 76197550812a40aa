"""spec.dataset.format auto: each format is recognised; ambiguous, mixed, unknown, mismatched data refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuneforge.trainer.dataset import load_dataset
from tuneforge.trainer.errors import DatasetInvalid

KNOWN = (
    "known formats: chat (messages), alpaca (instruction, input, output), "
    "prompt-completion (prompt, completion), preference (prompt, chosen, rejected)"
)
CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
ALPACA = {"instruction": "Say hi.", "output": "Hi."}
PROMPT_COMPLETION = {"prompt": "Say hi.", "completion": "Hi."}
PREFERENCE = {"prompt": "Say hi.", "chosen": "Hi.", "rejected": "Go away."}


def write(tmp_path: Path, *records: Any) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def refusal(path: Path, trainer: str = "sft") -> str:
    with pytest.raises(DatasetInvalid) as caught:
        load_dataset(path, "auto", trainer=trainer)
    return caught.value.message


@pytest.mark.parametrize(
    ("record", "trainer", "fmt"),
    [
        (CHAT, "sft", "chat"),
        (ALPACA, "sft", "alpaca"),
        (PROMPT_COMPLETION, "sft", "prompt-completion"),
        (
            {"prompt": [{"role": "user", "content": "Hi"}], "completion": [CHAT["messages"][1]]},
            "sft",
            "prompt-completion",
        ),
        (PREFERENCE, "dpo", "preference"),
        (
            {
                "chosen": CHAT["messages"],
                "rejected": [CHAT["messages"][0], {"role": "assistant", "content": "No."}],
            },
            "dpo",
            "preference",
        ),
    ],
)
def test_each_format_is_recognised(tmp_path: Path, record: dict[str, Any], trainer: str, fmt: str) -> None:
    loaded = load_dataset(write(tmp_path, record, record), "auto", trainer=trainer)
    assert (loaded.format, len(loaded.records)) == (fmt, 2)


def test_records_that_fit_no_format_are_skipped_once_the_format_is_known(tmp_path: Path) -> None:
    loaded = load_dataset(write(tmp_path, ALPACA, ALPACA, {"question": "?"}), "auto")
    assert [str(p) for p in loaded.problems] == ["data.jsonl:3: missing field 'instruction'"]


def test_a_record_fitting_two_formats_is_ambiguous(tmp_path: Path) -> None:
    both = {**PROMPT_COMPLETION, **PREFERENCE}
    assert refusal(write(tmp_path, ALPACA, both)) == (
        "data.jsonl:2: the record has the keys of prompt-completion (prompt, completion) and preference "
        "(chosen, rejected): cannot tell prompt-completion from preference; set spec.dataset.format"
    )
    every = {**CHAT, **ALPACA, **PROMPT_COMPLETION}
    assert "cannot tell chat, alpaca and prompt-completion apart" in refusal(write(tmp_path, every))


def test_unknown_records_name_the_keys_seen_and_the_formats_known(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, {"question": "?", "answer": "!"}, {"q": 1})) == (
        f"cannot detect the dataset format: keys seen: answer, q, question; {KNOWN}"
    )
    assert refusal(write(tmp_path, ["a", "list"])) == (
        f"cannot detect the dataset format: keys seen: none (the records are not objects); {KNOWN}"
    )


def test_mixed_formats_are_refused(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, PROMPT_COMPLETION, CHAT)).startswith(
        "the dataset mixes formats (prompt-completion at data.jsonl:1, chat at data.jsonl:2)"
    )


@pytest.mark.parametrize(
    ("record", "hint"),
    [
        ({"conversations": [{"from": "human", "value": "Hi"}]}, "rename 'conversations' to 'messages'"),
        ({"text": "Once upon a time"}, "plain text is not a fine-tuning format here"),
    ],
)
def test_formats_tuneforge_does_not_read_get_a_way_out(
    tmp_path: Path, record: dict[str, Any], hint: str
) -> None:
    message = refusal(write(tmp_path, record))
    assert message.startswith("the dataset looks like ") and hint in message and KNOWN in message


def test_the_format_must_fit_the_trainer(tmp_path: Path) -> None:
    assert refusal(write(tmp_path, PREFERENCE), "sft") == (
        "the dataset holds preference records (first at data.jsonl:1), which spec.trainer dpo learns from; "
        "spec.trainer sft needs alpaca or chat or prompt-completion records"
    )
    assert refusal(write(tmp_path, CHAT), "dpo") == (
        "the dataset holds chat records (first at data.jsonl:1), which spec.trainer sft learns from; "
        "spec.trainer dpo needs preference records"
    )
