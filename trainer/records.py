"""Read raw records from a dataset folder: JSONL lines or JSON arrays, each with file:line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_SUFFIXES = (".jsonl", ".json")
# Written by tuneforge.storage next to every uploaded folder; not data.
IGNORED_NAMES = frozenset({"_MANIFEST.json"})


@dataclass(frozen=True)
class Problem:
    """One bad record (or file): where it is and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class RawRecord:
    """A parsed JSON value and where it came from (``file:line``)."""

    where: str
    value: Any


def find_data_files(root: Path) -> list[Path]:
    """The .jsonl/.json files under ``root`` (or ``root`` itself when it is a file), sorted."""
    if root.is_file():
        return [root]
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in DATA_SUFFIXES
        and p.name not in IGNORED_NAMES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files)


def read_records(path: Path, name: str) -> tuple[list[RawRecord], list[Problem]]:
    """Records of one file; ``name`` is how messages refer to it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        return [], [Problem(name, f"not UTF-8 text (byte {err.start}): is this a JSONL file?")]
    except OSError as err:
        return [], [Problem(name, f"cannot read: {err.strerror or err}")]
    if path.suffix == ".json":
        return parse_json_array(text, name)
    return parse_jsonl(text, name)


def parse_jsonl(text: str, name: str) -> tuple[list[RawRecord], list[Problem]]:
    """One record per non-blank line."""
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            records.append(RawRecord(where, json.loads(line)))
        except json.JSONDecodeError as err:
            problems.append(Problem(where, f"invalid JSON: {err.msg} (column {err.colno})"))
    return records, problems


def parse_json_array(text: str, name: str) -> tuple[list[RawRecord], list[Problem]]:
    """A JSON array of records; each record is located by the line it starts on."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if pos == len(text):
        return [], []
    if text[pos] != "[":
        return [], [Problem(f"{name}:{_line(text, pos)}", "expected a JSON array of records ('[' ...)")]
    records: list[RawRecord] = []
    pos = _skip_space(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return [], []
    while pos < len(text):
        where = f"{name}:{_line(text, pos)}"
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            # One broken element breaks the rest of the array: nothing after it can be trusted.
            return records, [Problem(f"{name}:{err.lineno}", f"invalid JSON: {err.msg} (column {err.colno})")]
        records.append(RawRecord(where, value))
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_space(text, pos + 1)
        elif pos < len(text) and text[pos] == "]":
            return records, []
        elif pos < len(text):
            return records, [Problem(f"{name}:{_line(text, pos)}", "invalid JSON: expected ',' or ']'")]
    return records, [Problem(f"{name}:{_line(text, pos)}", "invalid JSON: the array is not closed with ']'")]


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1
