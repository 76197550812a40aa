"""Read what ``tuneforge fetch`` put in the dataset folder: every source, in order, every record located.

A dataset is one file or a folder. Sources, concatenated in sorted path order:

- ``*.jsonl`` / ``*.ndjson``: one JSON record per line;
- ``*.json``: a JSON array of records (the old pipeline's JSON-to-JSONL step, built in), or JSON Lines
  when the file starts with ``{`` (what ``datasets.Dataset.to_json`` writes);
- ``*.parquet``: rows of a Parquet file;
- a Hugging Face ``save_to_disk`` folder (``state.json`` + ``*.arrow``, or a ``dataset_dict.json`` of
  splits), read with ``datasets.load_from_disk``.

A folder whose names follow the Hugging Face Hub's split conventions (``data/train-00000-of-00001.parquet``
and ``data/test-...``, ``train/`` and ``validation/``, ``train.jsonl`` and ``dev.jsonl``...) is a dataset
with splits: training reads the train split, an eval dataset the validation (or eval, or test) split.

Each source yields, in order, :class:`RawRecord` (a parsed value and where it is) or :class:`Problem`
(a line or file that could not be read). Locations: ``file.jsonl:17`` (line), ``file.parquet[3]`` and
``folder[3]`` (row index from 0, as ``ds[3]`` / ``df.iloc[3]``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.trainer.records import IGNORED_NAMES, Problem, RawRecord, parse_json_array

Entry = RawRecord | Problem

JSONL_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIX = ".json"
PARQUET_SUFFIX = ".parquet"
DATA_SUFFIXES = (*JSONL_SUFFIXES, JSON_SUFFIX, PARQUET_SUFFIX)
DESCRIBED = ".jsonl, .json or .parquet files or a Hugging Face save_to_disk folder"

# Files that mark a folder as written by datasets' save_to_disk.
HF_DATASET_MARKER = "state.json"
HF_DATASET_DICT_MARKER = "dataset_dict.json"
# Which split of a DatasetDict each role reads, in order of preference.
TRAIN_SPLITS = ("train",)
EVAL_SPLITS = ("validation", "eval", "test")
PARQUET_BATCH_ROWS = 4096


@dataclass(frozen=True)
class Source:
    """One file or save_to_disk folder of the dataset, and how messages name it."""

    path: Path
    name: str

    @property
    def is_hf_folder(self) -> bool:
        return self.path.is_dir()


def is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (
        (path / HF_DATASET_MARKER).is_file() or (path / HF_DATASET_DICT_MARKER).is_file()
    )


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_sources(root: Path) -> list[Source]:
    """The data files and save_to_disk folders under ``root`` (or ``root`` itself), in sorted path order.

    Hidden paths and storage manifests are skipped, and so is everything inside a save_to_disk folder
    (its ``state.json`` is not data).
    """
    if root.is_file():
        return [Source(root, root.name)]
    if is_hf_folder(root):
        return [Source(root, root.name)]
    found: list[Path] = []
    hf_folders: list[Path] = []
    for path in sorted(root.rglob("*")):
        if _hidden(path, root) or any(path.is_relative_to(folder) for folder in hf_folders):
            continue
        if is_hf_folder(path):
            hf_folders.append(path)
            found.append(path)
        elif path.is_file() and path.suffix in DATA_SUFFIXES and path.name not in IGNORED_NAMES:
            found.append(path)
    return [Source(p, p.relative_to(root).as_posix()) for p in sorted(found)]


def select_split(root: Path, sources: list[Source], *, eval_role: bool) -> tuple[list[Source], str | None]:
    """The sources of the split this role reads, and its name, when ``root`` is laid out in splits.

    Split names come from datasets' own file-naming conventions (``get_data_patterns``).
    Raises ValueError when there are splits and none is the one the role needs.
    """
    from datasets.data_files import DataFilesDict, get_data_patterns

    if not root.is_dir() or len(sources) < 2:
        return sources, None
    try:
        resolved = DataFilesDict.from_patterns(get_data_patterns(str(root)), base_path=str(root))
    except (FileNotFoundError, ValueError):  # no file datasets knows: no split layout
        return sources, None
    splits = {str(name): [Path(f).resolve() for f in files] for name, files in resolved.items()}
    if len(splits) < 2:
        return sources, None
    split = choose_split(sorted(splits), eval_role=eval_role, name=f"the folder {root.name}")
    files = set(splits[split])

    def in_split(source: Source) -> bool:
        where = source.path.resolve()
        if source.is_hf_folder:
            return any(f.is_relative_to(where) for f in files)
        return where in files

    return [s for s in sources if in_split(s)], split


def read_source(source: Source, *, eval_role: bool = False) -> Iterator[Entry]:
    """Records and problems of one source, in file order."""
    if source.is_hf_folder:
        yield from read_hf_folder(source.path, source.name, eval_role=eval_role)
    elif source.path.suffix == PARQUET_SUFFIX:
        yield from read_parquet(source.path, source.name)
    else:
        yield from read_json_file(source.path, source.name)


def read_json_file(path: Path, name: str) -> Iterator[Entry]:
    """A JSONL file line by line, or a .json array (JSON Lines when it starts with '{')."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            if path.suffix == JSON_SUFFIX:
                yield from _json_entries(handle.read(), name)
            else:
                yield from _jsonl_entries(handle, name)
    except UnicodeDecodeError as err:
        yield Problem(name, f"not UTF-8 text (byte {err.start}): is this a JSONL file?")
    except OSError as err:
        yield Problem(name, f"cannot read: {err.strerror or err}")


def _json_entries(text: str, name: str) -> Iterator[Entry]:
    if not text.lstrip().startswith("{"):
        records, problems = parse_json_array(text, name)
        yield from records
        yield from problems
        return
    lines = text.splitlines()
    if sum(1 for line in lines if line.strip()) > 1:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None  # not one object: JSON Lines
        if isinstance(value, dict):
            keys = ", ".join(sorted(value)[:10])
            yield Problem(
                f"{name}:1",
                f"expected a JSON array of records or JSON Lines, got one JSON object (keys: {keys}); "
                "put the records in a top-level array",
            )
            return
    yield from _jsonl_entries(iter(lines), name)


def _jsonl_entries(lines: Iterable[str], name: str) -> Iterator[Entry]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            yield RawRecord(where, json.loads(line))
        except json.JSONDecodeError as err:
            yield Problem(where, f"invalid JSON: {err.msg} (column {err.colno})")


def read_parquet(path: Path, name: str) -> Iterator[Entry]:
    """Rows of a Parquet file as dicts (nested lists and structs as lists and dicts), in batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        yield Problem(name, f"not a readable Parquet file: {err}")
        return
    index = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                yield RawRecord(f"{name}[{index}]", row)
                index += 1
    except (pa.ArrowException, OSError) as err:
        yield Problem(f"{name}[{index}]", f"cannot read the Parquet file from this row on: {err}")


def choose_split(splits: list[str], *, eval_role: bool, name: str) -> str:
    """The split of a DatasetDict a role reads: train for training, validation/eval/test for evaluation."""
    for wanted in EVAL_SPLITS if eval_role else TRAIN_SPLITS:
        if wanted in splits:
            return wanted
    if len(splits) == 1:
        return splits[0]
    wanted_text = " or ".join(EVAL_SPLITS if eval_role else TRAIN_SPLITS)
    raise ValueError(
        f"{name} has splits {', '.join(splits)} and none is {wanted_text}: "
        "give the split to use alone, or name it so"
    )


def read_hf_folder(path: Path, name: str, *, eval_role: bool = False) -> Iterator[Entry]:
    """Rows of a ``save_to_disk`` folder (a Dataset, or the train/eval split of a DatasetDict)."""
    import datasets

    try:
        loaded: Any = datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError, KeyError) as err:
        yield Problem(name, f"not a readable Hugging Face save_to_disk folder: {err}")
        return
    if isinstance(loaded, datasets.DatasetDict):
        try:
            split = choose_split(list(loaded), eval_role=eval_role, name=f"the DatasetDict {name}")
        except ValueError as err:
            yield Problem(name, str(err))
            return
        loaded, name = loaded[split], f"{name}/{split}"
    for index, row in enumerate(loaded):
        yield RawRecord(f"{name}[{index}]", row)
