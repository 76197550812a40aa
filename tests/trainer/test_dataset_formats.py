"""prompt-completion and preference records (text and messages): validated, normalised, shaped for trl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuneforge.trainer.dataset import load_dataset, to_trl_rows
from tuneforge.trainer.errors import InvalidSpec
from tuneforge.trainer.formats import normalize_preference, normalize_prompt_completion

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def problems(path: Path, fmt: str, trainer: str = "sft") -> list[str]:
    return [str(p) for p in load_dataset(path, fmt, trainer=trainer).problems]


def test_prompt_completion_text_and_messages() -> None:
    assert normalize_prompt_completion({"prompt": "2 + 2 =", "completion": " 4", "id": 7}) == {
        "prompt": "2 + 2 =",
        "completion": " 4",
    }
    conversation = {
        "prompt": [{"role": "system", "content": "Be brief."}, user("2 + 2?")],
        "completion": [assistant("4")],
    }
    assert normalize_prompt_completion(conversation) == conversation


def test_prompt_completion_problems_name_field_and_line(tmp_path: Path) -> None:
    records = [
        {"prompt": "a", "completion": "b"},
        {"prompt": "a"},
        {"prompt": "a", "completion": ""},
        {"prompt": [user("a")], "completion": "b"},
        {"prompt": [user("a")], "completion": [user("b")]},
        {"prompt": [user("a"), {"role": "system", "content": "late"}], "completion": [assistant("b")]},
        {"prompt": 5, "completion": "b"},
        {"prompt": "c", "completion": "d"},
        {"prompt": "e", "completion": "f"},
        {"prompt": "g", "completion": "h"},
        {"prompt": "i", "completion": "j"},
        {"prompt": "k", "completion": "l"},
        {"prompt": "m", "completion": "n"},
    ]
    assert problems(write_jsonl(tmp_path / "pc.jsonl", records), "prompt-completion") == [
        "pc.jsonl:2: missing field 'completion'",
        "pc.jsonl:3: field 'completion' is empty",
        "pc.jsonl:4: fields 'prompt' and 'completion' must both be strings or both be arrays of messages, "
        "got array and string",
        "pc.jsonl:5: completion[0].role 'user' must be assistant",
        "pc.jsonl:6: prompt[1]: a system message may only come first",
        "pc.jsonl:7: field 'prompt' must be a string, got number",
    ]


def test_preference_text_and_messages() -> None:
    assert normalize_preference(
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."}
    ) == {
        "prompt": "Capital of France?",
        "chosen": "Paris.",
        "rejected": "Lyon.",
    }
    explicit = {"prompt": [user("Hi")], "chosen": [assistant("Hello!")], "rejected": [assistant("Go away.")]}
    assert normalize_preference(explicit) == explicit
    # trl's implicit prompt: the leading messages both conversations share.
    implicit = {"chosen": [user("Hi"), assistant("Hello!")], "rejected": [user("Hi"), assistant("Go away.")]}
    assert normalize_preference(implicit) == explicit
    # A text prompt with message answers is one user turn.
    assert normalize_preference({**explicit, "prompt": "Hi"}) == explicit


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "q", "chosen": "a"}, "missing field 'rejected'"),
        (
            {"chosen": "a", "rejected": "b"},
            "missing field 'prompt' (text answers need the prompt in its own field)",
        ),
        (
            {"prompt": "q", "chosen": "a", "rejected": "a"},
            "'chosen' and 'rejected' are identical: the pair teaches nothing",
        ),
        (
            {"prompt": "q", "chosen": [assistant("a")], "rejected": "b"},
            "fields 'chosen' and 'rejected' must both be strings or both be arrays of messages, "
            "got array and string",
        ),
        (
            {"prompt": [user("q")], "chosen": "a", "rejected": "b"},
            "field 'prompt' is an array of messages, so 'chosen' and 'rejected' must be too",
        ),
        (
            {"chosen": [assistant("a")], "rejected": [assistant("b")]},
            "missing field 'prompt', and 'chosen' and 'rejected' share no leading messages to take it from",
        ),
        (
            {"chosen": [user("q"), assistant("a")], "rejected": [user("q")]},
            "'rejected' holds nothing after the messages it shares with the other answer",
        ),
        (
            {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [user("b")]},
            "rejected[0].role 'user' must be assistant",
        ),
        ({"prompt": "", "chosen": "a", "rejected": "b"}, "field 'prompt' is empty"),
        ("just text", "expected a JSON object with prompt/chosen/rejected, got string"),
    ],
)
def test_preference_problems_say_what_is_wrong(record: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_preference(record)
    assert str(caught.value) == message


def test_one_style_per_dataset(tmp_path: Path) -> None:
    text = {"prompt": "q", "chosen": "a", "rejected": "b"}
    messages = {"prompt": [user("q")], "chosen": [assistant("a")], "rejected": [assistant("b")]}
    path = write_jsonl(tmp_path / "mixed.jsonl", [text, text, messages, text])
    assert problems(path, "preference", "dpo") == [
        "mixed.jsonl:3: the record is messages but the first one (mixed.jsonl:1) is text; "
        "use one style per dataset"
    ]


def test_the_bundled_preference_sample_is_clean() -> None:
    loaded = load_dataset(EXAMPLES / "preference-sample.json", "auto", trainer="dpo")
    assert (loaded.format, len(loaded.records), loaded.problems) == ("preference", 200, [])
    first = loaded.records[0]
    assert first["prompt"] == [user("Find the largest number in the list.\n\n178, 833, 574, 91")]
    assert first["chosen"] == [assistant("The largest number is 833.")]


def test_rows_for_trl_keep_text_as_text_and_messages_as_messages() -> None:
    text = {"prompt": "Q: 2+2\nA:", "completion": " 4"}
    assert to_trl_rows([text], "prompt-completion", chat_template=False) == [text]
    pair = {"prompt": [user("Hi")], "chosen": [assistant("Hello!")], "rejected": [assistant("No.")]}
    assert to_trl_rows([pair], "preference", chat_template=True) == [pair]


@pytest.mark.parametrize("fmt", ["prompt-completion", "preference"])
def test_messages_need_a_chat_template(fmt: str) -> None:
    record = {"prompt": [user("Hi")], "completion": [assistant("Hello!")]}
    if fmt == "preference":
        record = {"prompt": [user("Hi")], "chosen": [assistant("Hello!")], "rejected": [assistant("No.")]}
    with pytest.raises(InvalidSpec, match=f"{fmt} data made of messages needs a model with a chat template"):
        to_trl_rows([record], fmt, chat_template=False)
