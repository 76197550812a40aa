"""Every source layout fetch can leave: JSONL, JSON arrays, Parquet, save_to_disk folders, folders of them.

Each bad record is reported where it is: file:line, or file[row] for Parquet and Arrow data.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneforge.trainer.dataset import load_dataset
from tuneforge.trainer.errors import DatasetInvalid
from tuneforge.trainer.readers import choose_split, find_sources

GOOD: list[dict[str, Any]] = [
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Say hi.", "input": None, "output": "Hi."},
    {"instruction": "Spell cat.", "input": "", "output": "c-a-t"},
]


def problems(root: Path, fmt: str = "auto") -> list[str]:
    return [str(p) for p in load_dataset(root, fmt).problems]


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_jsonl_streams_with_line_numbers(tmp_path: Path) -> None:
    lines = [json.dumps(GOOD[0]), "", "{broken", json.dumps({"instruction": "x"}), json.dumps(GOOD[1])]
    (tmp_path / "d.ndjson").write_text("\n".join(lines) + "\n")
    loaded = load_dataset(tmp_path / "d.ndjson", "auto")
    assert (loaded.format, len(loaded.records)) == ("alpaca", 2)
    assert [str(p) for p in loaded.problems] == [
        "d.ndjson:3: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        "d.ndjson:4: missing field 'output'",
    ]


def test_json_array_is_converted_in_place_of_the_old_helper_script(tmp_path: Path) -> None:
    text = "[\n" + ",\n".join(json.dumps(r) for r in [*GOOD, {"instruction": "x", "output": 3}]) + "\n]\n"
    (tmp_path / "records.json").write_text(text)
    loaded = load_dataset(tmp_path / "records.json", "alpaca")
    assert [r["output"] for r in loaded.records] == ["Blue.", "5", "Hi.", "c-a-t"]
    assert [str(p) for p in loaded.problems] == [
        "records.json:6: field 'output' must be a string, got number"
    ]


def test_a_json_file_of_json_lines_is_read_as_lines(tmp_path: Path) -> None:
    # What datasets.Dataset.to_json writes by default.
    datasets.Dataset.from_list(GOOD).to_json(tmp_path / "export.json")
    loaded = load_dataset(tmp_path / "export.json", "auto")
    assert [r["instruction"] for r in loaded.records] == [r["instruction"] for r in GOOD]


def test_a_json_object_that_is_not_a_record_list_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": GOOD, "version": 1}, indent=2))
    with pytest.raises(DatasetInvalid) as caught:
        load_dataset(tmp_path / "wrapped.json", "auto")
    assert caught.value.message == (
        f"the dataset in {tmp_path / 'wrapped.json'} holds no records: wrapped.json:1: expected a JSON array "
        "of records or JSON Lines, got one JSON object (keys: data, version); put the records in a "
        "top-level array"
    )


def test_parquet_rows_are_read_and_bad_rows_named_by_index(tmp_path: Path) -> None:
    rows = [*GOOD[:2], {"instruction": "Say hi.", "input": "", "output": None}, GOOD[3]]
    write_parquet(tmp_path / "train.parquet", rows)
    loaded = load_dataset(tmp_path / "train.parquet", "alpaca")
    assert [r["output"] for r in loaded.records] == ["Blue.", "5", "c-a-t"]
    assert [str(p) for p in loaded.problems] == [
        "train.parquet[2]: field 'output' must be a string, got null"
    ]


def test_parquet_with_nested_messages_is_chat(tmp_path: Path) -> None:
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    bad = [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello!"}]
    write_parquet(tmp_path / "chat.parquet", [{"messages": conversation}] * 3 + [{"messages": bad}])
    loaded = load_dataset(tmp_path / "chat.parquet", "auto")
    assert loaded.format == "chat" and loaded.records[0] == {"messages": conversation}
    assert [str(p) for p in loaded.problems] == [
        "chat.parquet[3]: messages[1].role 'bot' is not one of system, user, assistant"
    ]


def test_a_file_that_is_not_parquet_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "b.jsonl").write_text(json.dumps(GOOD[0]) + "\n")
    loaded = load_dataset(tmp_path, "auto")
    assert len(loaded.records) == 1
    ((where, message),) = [(p.where, p.message) for p in loaded.problems]
    assert where == "a.parquet" and message.startswith("not a readable Parquet file: ")


def test_save_to_disk_dataset_rows_are_named_by_folder_and_index(tmp_path: Path) -> None:
    rows = [*GOOD, {"instruction": "", "input": "", "output": "x"}]
    datasets.Dataset.from_list(rows).save_to_disk(tmp_path / "hf")
    loaded = load_dataset(tmp_path / "hf", "auto")
    assert len(loaded.records) == 4
    assert [str(p) for p in loaded.problems] == ["hf[4]: field 'instruction' is empty"]


def test_save_to_disk_dataset_dict_gives_train_for_training_and_validation_for_eval(tmp_path: Path) -> None:
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(GOOD[:3]),
            "validation": datasets.Dataset.from_list(GOOD[3:]),
        }
    )
    splits.save_to_disk(tmp_path / "hf")
    train = load_dataset(tmp_path / "hf", "auto")
    evals = load_dataset(tmp_path / "hf", "alpaca", what="eval dataset")
    assert [r["output"] for r in train.records] == ["Blue.", "5", "Hi."]
    assert [r["output"] for r in evals.records] == ["c-a-t"]


def test_dataset_dict_without_the_wanted_split_is_refused_naming_its_splits() -> None:
    assert choose_split(["test"], eval_role=False, name="hf") == "test"  # the only one
    assert choose_split(["train", "test"], eval_role=True, name="hf") == "test"
    with pytest.raises(ValueError, match=r"^hf has splits a, b and none is train: give the split"):
        choose_split(["a", "b"], eval_role=False, name="hf")


def test_a_folder_in_hub_split_layout_gives_each_role_its_split(tmp_path: Path) -> None:
    # What a Hugging Face Hub dataset repository looks like once fetched.
    (tmp_path / "data").mkdir()
    write_parquet(tmp_path / "data" / "train-00000-of-00002.parquet", GOOD[:2])
    write_parquet(tmp_path / "data" / "train-00001-of-00002.parquet", GOOD[2:3])
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", GOOD[3:])
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n")
    train = load_dataset(tmp_path, "auto")
    evals = load_dataset(tmp_path, "auto", what="eval dataset")
    assert [r["output"] for r in train.records] == ["Blue.", "5", "Hi."]
    assert [r["output"] for r in evals.records] == ["c-a-t"]


def test_split_files_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOOD[:3]))
    (tmp_path / "dev.jsonl").write_text(json.dumps(GOOD[3]) + "\n")
    with caplog.at_level(logging.INFO):
        assert len(load_dataset(tmp_path, "alpaca").records) == 3
    assert (
        "the dataset is laid out in splits: reading train (train.jsonl), leaving out dev.jsonl" in caplog.text
    )
    assert len(load_dataset(tmp_path, "alpaca", what="eval dataset").records) == 1


def test_splits_without_a_train_split_are_refused(tmp_path: Path) -> None:
    for split in ("first", "second"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "part.jsonl").write_text(json.dumps(GOOD[0]) + "\n")
    loaded = load_dataset(tmp_path, "alpaca")  # no split names: one dataset
    assert len(loaded.records) == 2
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "v.jsonl").write_text(json.dumps(GOOD[1]) + "\n")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.jsonl").write_text(json.dumps(GOOD[2]) + "\n")
    with pytest.raises(DatasetInvalid) as caught:
        load_dataset(tmp_path, "alpaca")
    assert caught.value.message == (
        f"the dataset: the folder {tmp_path.name} has splits test, validation and none is train: "
        "give the split to use alone, or name it so"
    )


def test_a_folder_mixing_layouts_is_read_in_sorted_path_order(tmp_path: Path) -> None:
    (tmp_path / "b-part.jsonl").write_text(json.dumps(GOOD[1]) + "\n")
    write_parquet(tmp_path / "a-part.parquet", [GOOD[0]])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "part.json").write_text(json.dumps([GOOD[2]]))
    datasets.Dataset.from_list([GOOD[3]]).save_to_disk(tmp_path / "d-hf")
    (tmp_path / "_MANIFEST.json").write_text('{"files": []}')
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.jsonl").write_text("garbage\n")
    (tmp_path / "README.md").write_text("# data\n")
    names = [s.name for s in find_sources(tmp_path)]
    # The save_to_disk folder is one source: its state.json and dataset_info.json are not data.
    assert names == ["a-part.parquet", "b-part.jsonl", "c/part.json", "d-hf"]
    loaded = load_dataset(tmp_path, "auto")
    assert [r["output"] for r in loaded.records] == ["Blue.", "5", "Hi.", "c-a-t"]
    assert loaded.problems == []


def test_problems_across_files_keep_file_order(tmp_path: Path) -> None:
    (tmp_path / "1.jsonl").write_text("\n".join([json.dumps(GOOD[0]), "{", json.dumps({"instruction": "x"})]))
    write_parquet(tmp_path / "2.parquet", [{"instruction": "y", "input": "", "output": ""}, GOOD[1], GOOD[2]])
    (tmp_path / "3.jsonl").write_text(json.dumps(GOOD[3]) + "\n")
    assert [p.split(": ")[0] for p in problems(tmp_path, "alpaca")] == [
        "1.jsonl:2",
        "1.jsonl:3",
        "2.parquet[0]",
    ]


def test_an_empty_folder_says_what_it_looks_for(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing")
    with pytest.raises(DatasetInvalid) as caught:
        load_dataset(tmp_path, "auto")
    assert caught.value.message == (
        f"the dataset folder {tmp_path} holds no .jsonl, .json or .parquet files or a Hugging Face "
        "save_to_disk folder"
    )
