"""Samples longer than maxSeqLength: measured as trl tokenizes them, truncated or dropped, and counted."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from tuneforge.trainer.dataset import load_dataset, to_trl_rows
from tuneforge.trainer.errors import InvalidSpec
from tuneforge.trainer.overlength import fit_to_length, row_length, sample_lengths
from tuneforge.trainer.train import Data, prepare_rows

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model)


def alpaca_rows() -> list[dict[str, Any]]:
    records = load_dataset(EXAMPLES / "alpaca-sample.jsonl", "alpaca").records
    return to_trl_rows(records, "alpaca", chat_template=True)


def test_lengths_are_counted_as_trl_tokenizes(tokenizer: Any) -> None:
    text = {"prompt": "Say hi.", "completion": " Hi."}
    assert row_length(text, tokenizer) == len(tokenizer("Say hi. Hi.")["input_ids"]) + 1  # + eos
    user = [{"role": "user", "content": "Say hi."}]
    chosen, rejected = (
        [{"role": "assistant", "content": "Hi."}],
        [{"role": "assistant", "content": "No " * 20}],
    )
    rendered = tokenizer.apply_chat_template(user + rejected, tokenize=True, return_dict=True)
    pair = {"prompt": user, "chosen": chosen, "rejected": rejected}
    assert row_length(pair, tokenizer) == len(rendered["input_ids"])  # the longer answer counts
    assert row_length({"messages": user + chosen}, tokenizer) < row_length(pair, tokenizer)


def test_truncate_keeps_and_counts_drop_removes_and_counts(tokenizer: Any) -> None:
    rows = alpaca_rows()
    train, evals = rows[:250], rows[250:]
    lengths = sample_lengths(rows, tokenizer)
    limit = sorted(lengths)[-40]  # about 40 samples are longer
    over_train = sum(n > limit for n in lengths[:250])
    over_eval = sum(n > limit for n in lengths[250:])
    assert over_train > 0 and over_eval > 0

    kept = fit_to_length(train, evals, tokenizer, limit, "truncate")
    assert (kept.truncated, kept.dropped) == (over_train + over_eval, 0)
    assert kept.train == train and kept.eval == evals
    assert kept.longest == max(lengths)

    dropped = fit_to_length(train, evals, tokenizer, limit, "drop")
    assert (dropped.truncated, dropped.dropped) == (0, over_train + over_eval)
    assert len(dropped.train) == 250 - over_train and dropped.eval is not None
    assert len(dropped.eval) == 50 - over_eval
    assert all(row_length(r, tokenizer) <= limit for r in dropped.train + dropped.eval)
    assert fit_to_length(train, None, tokenizer, max(lengths), "drop").dropped == 0


def test_when_every_training_sample_is_too_long_drop_refuses(tokenizer: Any) -> None:
    with pytest.raises(InvalidSpec) as caught:
        fit_to_length(alpaca_rows()[:5], None, tokenizer, 8, "drop")
    assert caught.value.message.startswith(
        "every training sample is longer than spec.hyperparameters.maxSeqLength 8 tokens and "
        "spec.dataset.overlength is drop; raise maxSeqLength (the longest sample has "
    )


def test_prepare_rows_applies_the_policy_and_says_so(
    tokenizer: Any, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = load_dataset(EXAMPLES / "chat-sample.jsonl", "chat").records
    data = Data("chat", records[:20], records[20:30], skipped=0)
    with caplog.at_level(logging.WARNING):
        rows = prepare_rows(data, tokenizer, 40, tiny_model, overlength="drop")
    assert rows.dropped > 0 and rows.truncated == 0
    assert rows.eval is not None and len(rows.train) + len(rows.eval) == 30 - rows.dropped
    assert f"{rows.dropped} of 30 samples are longer than maxSeqLength=40 tokens" in caplog.text
    assert "are dropped (spec.dataset.overlength drop)" in caplog.text
    truncated = prepare_rows(data, tokenizer, 40, tiny_model)
    assert (truncated.truncated, truncated.dropped, len(truncated.train)) == (rows.dropped, 0, 20)
