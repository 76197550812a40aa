"""Load a dataset folder into validated records, and shape them for trl.

Bad records are skipped and counted; a dataset with nothing usable left (or
mostly broken) fails before any model is loaded, naming file:line of the
first problems.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.trainer.errors import DatasetInvalid
from tuneforge.trainer.formats import ALPACA, CHAT, NORMALIZERS, detect_format
from tuneforge.trainer.records import Problem, RawRecord, find_data_files, read_records

log = logging.getLogger(__name__)

# More broken records than this share means the data is not what the spec says it is.
MAX_BAD_FRACTION = 0.5
SHOWN_PROBLEMS = 5
LOGGED_PROBLEMS = 50

ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n### Response:\n"
ALPACA_PROMPT_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


@dataclass
class LoadedDataset:
    """Valid records of one format, and what was wrong with the rest."""

    format: str
    records: list[dict[str, Any]]
    problems: list[Problem] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def summary(self) -> str:
        text = f"{len(self.records)} {self.format} records"
        if self.problems:
            text += f", {self.skipped} invalid skipped (first: {self.problems[0]})"
        return text


def _file_order(problem: Problem) -> tuple[str, int]:
    name, _, line = problem.where.rpartition(":")
    return (name, int(line)) if line.isdigit() else (problem.where, 0)


def _first(problems: list[Problem]) -> str:
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


def validate(raw: list[RawRecord], problems: list[Problem], fmt: str, *, what: str) -> LoadedDataset:
    """Normalise ``raw`` in format ``fmt`` ("auto" detects it); pure apart from logging."""
    if fmt == "auto":
        fmt = detect_format(raw)
    normalize = NORMALIZERS[fmt]
    records: list[dict[str, Any]] = []
    problems = list(problems)
    for record in raw:
        try:
            records.append(normalize(record.value))
        except ValueError as err:
            problems.append(Problem(record.where, str(err)))
    problems.sort(key=_file_order)
    total = len(records) + len(problems)
    if not records:
        detail = f": {_first(problems)}" if problems else ""
        raise DatasetInvalid(f"the {what} has no valid {fmt} records ({len(problems)} invalid){detail}")
    if len(problems) > MAX_BAD_FRACTION * total:
        raise DatasetInvalid(
            f"{len(problems)} of {total} records of the {what} are invalid, more than "
            f"{MAX_BAD_FRACTION:.0%}; is spec.dataset.format right? {_first(problems)}"
        )
    for problem in problems[:LOGGED_PROBLEMS]:
        log.warning("skipping invalid record %s", problem)
    if len(problems) > LOGGED_PROBLEMS:
        log.warning("... and %d more invalid records", len(problems) - LOGGED_PROBLEMS)
    return LoadedDataset(fmt, records, problems)


def load_dataset(root: Path, fmt: str, *, what: str = "dataset") -> LoadedDataset:
    """Every record under ``root`` (a folder of .jsonl/.json files, or one file)."""
    if not root.exists():
        raise DatasetInvalid(f"the {what} folder {root} does not exist")
    files = find_data_files(root)
    if not files:
        raise DatasetInvalid(f"the {what} folder {root} holds no .jsonl or .json files")
    raw: list[RawRecord] = []
    problems: list[Problem] = []
    base = root if root.is_dir() else root.parent
    for path in files:
        file_records, file_problems = read_records(path, str(path.relative_to(base)))
        raw += file_records
        problems += file_problems
    if not raw:
        detail = f": {_first(problems)}" if problems else " (the files are empty)"
        raise DatasetInvalid(f"the {what} in {root} holds no records{detail}")
    return validate(raw, problems, fmt, what=what)


def split_eval(records: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """(train, eval): a seeded shuffle holds out ``fraction`` (at least one record, never all)."""
    if len(records) < 2:
        raise DatasetInvalid(
            "spec.dataset.evalSplit needs at least 2 valid records to hold some out; "
            f"the dataset has {len(records)}"
        )
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(records) - 1, max(1, round(len(records) * fraction)))
    held = set(order[:n_eval])
    train = [r for i, r in enumerate(records) if i not in held]
    evals = [r for i, r in enumerate(records) if i in held]
    return train, evals


def alpaca_user_text(record: dict[str, str]) -> str:
    return record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")


def to_trl_rows(records: list[dict[str, Any]], fmt: str, *, chat_template: bool) -> list[dict[str, Any]]:
    """Rows in the shapes trl's SFTTrainer understands.

    chat -> conversational language modelling ({messages}); alpaca -> prompt/completion
    (loss on the answer only), as chat turns when the model has a chat template,
    else with the classic Alpaca prompt.
    """
    if fmt == CHAT:
        return [{"messages": r["messages"]} for r in records]
    if fmt != ALPACA:
        raise ValueError(f"unknown format {fmt!r}")
    if chat_template:
        return [
            {
                "prompt": [{"role": "user", "content": alpaca_user_text(r)}],
                "completion": [{"role": "assistant", "content": r["output"]}],
            }
            for r in records
        ]
    return [
        {
            "prompt": (ALPACA_PROMPT_WITH_INPUT if r["input"] else ALPACA_PROMPT).format(**r),
            "completion": r["output"],
        }
        for r in records
    ]
