"""Load a dataset (a file or a folder of them) into validated records, and shape them for trl.

Bad records are skipped and counted; a dataset with nothing usable left (or
mostly broken) fails before any model is loaded, naming where the first
problems are (``file:line``, or ``file[row]`` for Parquet and Arrow data).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.trainer.detection import detect_format
from tuneforge.trainer.errors import DatasetInvalid, InvalidSpec
from tuneforge.trainer.formats import (
    ALPACA,
    CHAT,
    NORMALIZERS,
    PREFERENCE,
    PROMPT_COMPLETION,
    is_conversational,
)
from tuneforge.trainer.readers import DESCRIBED, Entry, find_sources, read_source, select_split
from tuneforge.trainer.records import Problem, RawRecord

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


def _first(problems: list[Problem]) -> str:
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


def _style(conversational: bool) -> str:
    return "messages" if conversational else "text"


def normalize_all(entries: list[Entry], fmt: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Valid records and every problem, in file order; one style (text or messages) per dataset."""
    normalize = NORMALIZERS[fmt]
    records: list[dict[str, Any]] = []
    problems: list[Problem] = []
    style: tuple[bool, str] | None = None  # (conversational, where first seen)
    for entry in entries:
        if isinstance(entry, Problem):
            problems.append(entry)
            continue
        try:
            record = normalize(entry.value)
        except ValueError as err:
            problems.append(Problem(entry.where, str(err)))
            continue
        conversational = is_conversational(record)
        if style is None:
            style = (conversational, entry.where)
        elif conversational != style[0]:
            problems.append(
                Problem(
                    entry.where,
                    f"the record is {_style(conversational)} but the first one ({style[1]}) is "
                    f"{_style(style[0])}; use one style per dataset",
                )
            )
            continue
        records.append(record)
    return records, problems


def validate(entries: list[Entry], fmt: str, *, what: str, trainer: str = "sft") -> LoadedDataset:
    """Normalise the records in format ``fmt`` ("auto" detects it); pure apart from logging."""
    if fmt == "auto":
        fmt = detect_format([e for e in entries if isinstance(e, RawRecord)], trainer=trainer)
    records, problems = normalize_all(entries, fmt)
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


def load_dataset(root: Path, fmt: str, *, what: str = "dataset", trainer: str = "sft") -> LoadedDataset:
    """Every record under ``root`` (a file, or a folder of files and save_to_disk folders).

    ``what`` names the data in messages; an "eval ..." dataset reads the validation (or eval, or
    test) split of a save_to_disk DatasetDict, the training data its train split.
    """
    eval_role = what.startswith("eval")
    if not root.exists():
        raise DatasetInvalid(f"the {what} folder {root} does not exist")
    sources = find_sources(root)
    if not sources:
        raise DatasetInvalid(f"the {what} folder {root} holds no {DESCRIBED}")
    try:
        chosen, split = select_split(root, sources, eval_role=eval_role)
    except ValueError as err:
        raise DatasetInvalid(f"the {what}: {err}") from err
    if split is not None:
        left = [s.name for s in sources if s not in chosen]
        log.info(
            "the %s is laid out in splits: reading %s (%s), leaving out %s",
            what,
            split,
            ", ".join(s.name for s in chosen),
            ", ".join(left) or "nothing",
        )
        sources = chosen
    entries: list[Entry] = []
    for source in sources:
        entries.extend(read_source(source, eval_role=eval_role))
    if not any(isinstance(e, RawRecord) for e in entries):
        problems = [e for e in entries if isinstance(e, Problem)]
        detail = f": {_first(problems)}" if problems else " (the files are empty)"
        raise DatasetInvalid(f"the {what} in {root} holds no records{detail}")
    return validate(entries, fmt, what=what, trainer=trainer)


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
    """Rows in the shapes trl's SFTTrainer and DPOTrainer understand.

    chat -> conversational language modelling ({messages}); prompt-completion and preference ->
    as they are (messages rendered by trl with the chat template, text used as is); alpaca ->
    prompt/completion (loss on the answer only), as chat turns when the model has a chat template,
    else with the classic Alpaca prompt.
    """
    if fmt in (CHAT, PROMPT_COMPLETION, PREFERENCE):
        if not chat_template and records and is_conversational(records[0]):
            raise InvalidSpec(
                f"{fmt} data made of messages needs a model with a chat template, and this model has none: "
                "use an instruct/chat model, or give prompts and answers as plain text"
            )
        if fmt == CHAT:
            return [{"messages": r["messages"]} for r in records]
        return [dict(r) for r in records]
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
