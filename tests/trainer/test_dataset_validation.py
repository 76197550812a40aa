"""Dataset loading: every bad record is reported with file:line; bad data fails before the model loads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tuneforge.trainer.dataset import load_dataset, split_eval, to_trl_rows
from tuneforge.trainer.errors import DatasetInvalid
from tuneforge.trainer.records import find_data_files, parse_json_array, parse_jsonl

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


def problems_of(name: str, fmt: str = "auto") -> list[str]:
    return [str(p) for p in load_dataset(DATA / name, fmt).problems]


def test_invalid_json_line_is_skipped_with_its_line_number(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        loaded = load_dataset(DATA / "bad_json.jsonl", "auto")
    assert loaded.format == "alpaca"
    assert len(loaded.records) == 3
    assert [p.where for p in loaded.problems] == ["bad_json.jsonl:2"]
    assert "invalid JSON" in loaded.problems[0].message
    assert "bad_json.jsonl:2: invalid JSON" in caplog.text
    assert "1 invalid skipped (first: bad_json.jsonl:2" in loaded.summary()


def test_missing_and_empty_fields_are_named() -> None:
    assert problems_of("missing_field.jsonl") == [
        "missing_field.jsonl:3: missing field 'output'",
        "missing_field.jsonl:4: field 'output' is empty",
    ]


def test_wrong_types_are_named_with_what_was_found() -> None:
    assert problems_of("wrong_type.jsonl", "alpaca") == [
        "wrong_type.jsonl:2: field 'output' must be a string, got number",
        "wrong_type.jsonl:4: field 'instruction' must be a string, got array",
        "wrong_type.jsonl:5: expected a JSON object with instruction/input/output, got array",
    ]


def test_a_missing_or_null_input_is_an_empty_input() -> None:
    loaded = load_dataset(DATA / "wrong_type.jsonl", "alpaca")
    assert loaded.records[-1] == {
        "instruction": "Name the capital of Peru.",
        "input": "",
        "output": "The capital of Peru is Lima.",
    }


def test_chat_problems_name_the_message_and_what_is_allowed() -> None:
    assert problems_of("chat_problems.jsonl", "chat") == [
        "chat_problems.jsonl:2: messages[1].role 'bot' is not one of system, user, assistant",
        "chat_problems.jsonl:4: messages[1]: a system message may only come first",
        "chat_problems.jsonl:5: the conversation has no assistant message to learn from",
        "chat_problems.jsonl:6: field 'messages' must be an array, got string",
        "chat_problems.jsonl:7: field 'messages' is empty",
        "chat_problems.jsonl:9: messages[1].content is empty",
        "chat_problems.jsonl:14: missing messages[0].role",
    ]
    assert len(load_dataset(DATA / "chat_problems.jsonl", "chat").records) == 10


def test_empty_file_fails_clearly() -> None:
    with pytest.raises(DatasetInvalid, match=r"holds no records \(the files are empty\)"):
        load_dataset(DATA / "empty.jsonl", "auto")


def test_nothing_valid_fails_naming_the_first_problems() -> None:
    with pytest.raises(DatasetInvalid) as caught:
        load_dataset(DATA / "all_bad.jsonl", "alpaca")
    message = caught.value.message
    assert "no valid alpaca records (3 invalid)" in message
    assert "all_bad.jsonl:1: missing field 'output'" in message
    assert "all_bad.jsonl:2: field 'output' must be a string, got number" in message
    assert "all_bad.jsonl:3: invalid JSON" in message


def test_mostly_broken_data_fails_rather_than_training_on_scraps(tmp_path: Path) -> None:
    good = json.dumps({"instruction": "Say hi.", "output": "Hi."})
    (tmp_path / "d.jsonl").write_text("\n".join([good, "{", "{", "{"]) + "\n")
    with pytest.raises(DatasetInvalid, match=r"3 of 4 records of the dataset are invalid, more than 50%"):
        load_dataset(tmp_path, "alpaca")


def test_json_arrays_report_the_line_each_record_starts_on() -> None:
    loaded = load_dataset(DATA / "records.json", "auto")
    assert len(loaded.records) == 3
    assert [str(p) for p in loaded.problems] == [
        "records.json:8: field 'output' must be a string, got number"
    ]


def test_a_broken_json_array_stops_at_the_break() -> None:
    records, problems = parse_json_array((DATA / "broken_array.json").read_text(), "broken_array.json")
    assert len(records) == 1
    assert [p.where for p in problems] == ["broken_array.json:3"]


def test_json_array_edge_cases() -> None:
    assert parse_json_array("  ", "a.json") == ([], [])
    assert parse_json_array("[ ]", "a.json") == ([], [])
    _, problems = parse_json_array('{"instruction": "x"}', "a.json")
    assert str(problems[0]) == "a.json:1: expected a JSON array of records ('[' ...)"
    _, problems = parse_json_array('[{"a": 1},\n{"a": 2}', "a.json")
    assert str(problems[0]) == "a.json:2: invalid JSON: the array is not closed with ']'"


def test_blank_lines_are_not_records() -> None:
    records, problems = parse_jsonl('{"a": 1}\n\n   \n{"a": 2}\n', "x.jsonl")
    assert [r.where for r in records] == ["x.jsonl:1", "x.jsonl:4"]
    assert problems == []


def test_folders_are_searched_and_manifests_and_hidden_files_ignored(tmp_path: Path) -> None:
    (tmp_path / "part-1.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part-2.json").write_text('[{"instruction": "c", "output": "d"}]')
    (tmp_path / "_MANIFEST.json").write_text('{"files": []}')
    (tmp_path / ".hidden.jsonl").write_text("garbage\n")
    (tmp_path / "README.md").write_text("# data\n")
    assert [p.relative_to(tmp_path).as_posix() for p in find_data_files(tmp_path)] == [
        "part-1.jsonl",
        "sub/part-2.json",
    ]
    loaded = load_dataset(tmp_path, "auto")
    assert [r["instruction"] for r in loaded.records] == ["a", "c"]


def test_a_folder_without_data_files_fails(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DatasetInvalid, match="holds no .jsonl, .json or .parquet files or a Hugging Face"):
        load_dataset(tmp_path, "auto")
    with pytest.raises(DatasetInvalid, match="does not exist"):
        load_dataset(tmp_path / "missing", "auto")


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "latin1.jsonl").write_bytes('{"instruction": "caf\xe9", "output": "x"}\n'.encode("latin-1"))
    with pytest.raises(DatasetInvalid, match=r"latin1.jsonl: not UTF-8 text"):
        load_dataset(tmp_path, "auto")


def test_auto_detects_the_bundled_samples() -> None:
    alpaca = load_dataset(EXAMPLES / "alpaca-sample.jsonl", "auto")
    chat = load_dataset(EXAMPLES / "chat-sample.jsonl", "auto")
    assert (alpaca.format, len(alpaca.records), alpaca.problems) == ("alpaca", 300, [])
    assert (chat.format, len(chat.records), chat.problems) == ("chat", 300, [])


def test_auto_refuses_mixed_formats() -> None:
    with pytest.raises(
        DatasetInvalid, match=r"mixes formats \(alpaca at mixed.jsonl:1, chat at mixed.jsonl:3\)"
    ):
        load_dataset(DATA / "mixed.jsonl", "auto")


def test_an_explicit_format_turns_other_records_into_reported_problems() -> None:
    loaded = load_dataset(DATA / "mixed.jsonl", "alpaca")
    assert [str(p) for p in loaded.problems] == ["mixed.jsonl:3: missing field 'instruction'"]


def test_auto_refuses_a_record_that_fits_two_formats() -> None:
    with pytest.raises(DatasetInvalid, match=r"both_keys.jsonl:1: .*cannot tell chat from alpaca"):
        load_dataset(DATA / "both_keys.jsonl", "auto")


def test_auto_refuses_unknown_records_listing_the_keys_seen() -> None:
    with pytest.raises(
        DatasetInvalid, match=r"cannot detect the dataset format.*keys seen: answer, question"
    ):
        load_dataset(DATA / "unknown.jsonl", "auto")


def test_auto_detected_preference_data_needs_the_dpo_trainer() -> None:
    with pytest.raises(
        DatasetInvalid,
        match=r"holds preference records \(first at preference.jsonl:1\), which spec.trainer dpo learns",
    ):
        load_dataset(DATA / "preference.jsonl", "auto")


def test_eval_split_is_seeded_and_holds_out_at_least_one() -> None:
    records = list(range(20))
    train, evals = split_eval(records, 0.1, seed=7)
    assert (len(train), len(evals)) == (18, 2)
    assert sorted(train + evals) == records
    assert split_eval(records, 0.1, seed=7) == (train, evals)
    assert split_eval(records, 0.1, seed=8) != (train, evals)
    assert [len(part) for part in split_eval([1, 2], 0.01, seed=0)] == [1, 1]
    with pytest.raises(DatasetInvalid, match="at least 2 valid records"):
        split_eval([1], 0.5, seed=0)


def test_alpaca_becomes_prompt_completion() -> None:
    record = {"instruction": "Reverse the word.", "input": "kiwi", "output": "iwik"}
    (chat,) = to_trl_rows([record], "alpaca", chat_template=True)
    assert chat == {
        "prompt": [{"role": "user", "content": "Reverse the word.\n\nkiwi"}],
        "completion": [{"role": "assistant", "content": "iwik"}],
    }
    (plain,) = to_trl_rows([record], "alpaca", chat_template=False)
    assert plain["prompt"] == "### Instruction:\nReverse the word.\n\n### Input:\nkiwi\n\n### Response:\n"
    assert plain["completion"] == "iwik"
    (no_input,) = to_trl_rows([{**record, "input": ""}], "alpaca", chat_template=False)
    assert "### Input" not in no_input["prompt"]
