"""Samples longer than maxSeqLength: measured, counted, truncated or dropped, and always reported.

Lengths are counted as trl will tokenize each row: the chat template for
messages, plain text plus the eos token trl appends otherwise. A preference
row is as long as the longer of prompt+chosen and prompt+rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from tuneforge.trainer.errors import InvalidSpec

log = logging.getLogger(__name__)

Policy = Literal["truncate", "drop"]
Row = dict[str, Any]


@dataclass
class Fitted:
    """Rows after the over-length policy, and what it did."""

    train: list[Row]
    eval: list[Row] | None
    truncated: int
    dropped: int
    longest: int


def _text_length(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text)["input_ids"]) + 1  # trl appends eos to plain-text samples


def _conversation_length(tokenizer: Any, messages: list[dict[str, Any]]) -> int:
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])


def _pair_length(tokenizer: Any, prompt: Any, answer: Any) -> int:
    if isinstance(prompt, list):
        return _conversation_length(tokenizer, prompt + answer)
    return _text_length(tokenizer, prompt + answer)


def row_length(row: Row, tokenizer: Any) -> int:
    """Tokens of one trl row (chat, prompt/completion or preference; text or messages)."""
    if "messages" in row:
        return _conversation_length(tokenizer, row["messages"])
    if "chosen" in row:
        return max(_pair_length(tokenizer, row["prompt"], row[key]) for key in ("chosen", "rejected"))
    return _pair_length(tokenizer, row["prompt"], row["completion"])


def sample_lengths(rows: list[Row], tokenizer: Any) -> list[int]:
    return [row_length(row, tokenizer) for row in rows]


def count_truncated(lengths: list[int], max_length: int) -> int:
    return sum(1 for n in lengths if n > max_length)


def _keep(rows: list[Row], lengths: list[int], max_length: int) -> list[Row]:
    return [row for row, n in zip(rows, lengths, strict=True) if n <= max_length]


def fit_to_length(
    train: list[Row], evals: list[Row] | None, tokenizer: Any, max_length: int, policy: Policy
) -> Fitted:
    """Apply ``policy`` to rows longer than ``max_length`` tokens (train and eval), logging what it did."""
    train_lengths = sample_lengths(train, tokenizer)
    eval_lengths = sample_lengths(evals or [], tokenizer)
    lengths = train_lengths + eval_lengths
    longest = max(lengths, default=0)
    over = count_truncated(lengths, max_length)
    if not over:
        return Fitted(train, evals, 0, 0, longest)
    what = "will be truncated" if policy == "truncate" else "are dropped (spec.dataset.overlength drop)"
    log.warning(
        "%d of %d samples are longer than maxSeqLength=%d tokens (longest %d) and %s",
        over,
        len(lengths),
        max_length,
        longest,
        what,
    )
    if policy == "truncate":
        return Fitted(train, evals, over, 0, longest)
    kept_train = _keep(train, train_lengths, max_length)
    kept_eval = _keep(evals, eval_lengths, max_length) if evals is not None else None
    for role, kept in (("training", kept_train), ("eval", kept_eval)):
        if kept is not None and not kept:
            raise InvalidSpec(
                f"every {role} sample is longer than spec.hyperparameters.maxSeqLength {max_length} tokens "
                f"and spec.dataset.overlength is drop; raise maxSeqLength (the longest sample has {longest} "
                "tokens) or set overlength to truncate"
            )
    return Fitted(kept_train, kept_eval, 0, over, longest)
