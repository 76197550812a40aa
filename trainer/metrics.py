"""Turn trainer logs into the API's Metrics (camelCase keys)."""

from __future__ import annotations

import math
from typing import Any


def perplexity(loss: float | None) -> float | None:
    """exp(loss), or None when missing or too large to be a number."""
    if loss is None or not math.isfinite(loss) or loss > 700:
        return None
    return math.exp(loss)


def _number(value: Any) -> float | None:
    """A finite float, or None: JSON (and so the status) has no NaN or Infinity."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def eval_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """evalLoss, perplexity, meanTokenAccuracy, evalRuntimeSeconds from an evaluation's metrics
    (and DPO's evalRewardAccuracy/evalRewardMargin)."""
    dpo = "eval_rewards/margins" in logs
    found = {
        "evalLoss": _number(logs.get("eval_loss")),
        # A DPO loss is not a language-modelling loss: exp() of it is no perplexity.
        "perplexity": None if dpo else perplexity(_number(logs.get("eval_loss"))),
        "meanTokenAccuracy": _number(logs.get("eval_mean_token_accuracy")),
        "evalRuntimeSeconds": _number(logs.get("eval_runtime")),
        "evalRewardAccuracy": _number(logs.get("eval_rewards/accuracies")),
        "evalRewardMargin": _number(logs.get("eval_rewards/margins")),
    }
    return {k: v for k, v in found.items() if v is not None}


def final_metrics(
    history: list[dict[str, Any]],
    train_output_metrics: dict[str, Any],
    *,
    train_samples: int,
    truncated_samples: int,
    dropped_samples: int | None = None,
) -> dict[str, float | int]:
    """The run's Metrics from the log history and the result of ``Trainer.train()``."""
    runtime = _number(train_output_metrics.get("train_runtime"))
    train_logs = [h for h in history if "loss" in h]
    last = train_logs[-1] if train_logs else {}
    tokens = _number(last.get("num_tokens"))
    found: dict[str, float | int | None] = {
        "trainSamples": train_samples,
        "truncatedSamples": truncated_samples,
        "trainLoss": _number(train_output_metrics.get("train_loss")),
        "trainRuntimeSeconds": runtime,
        "finalLoss": _number(last.get("loss")),
        "tokensPerSecond": tokens / runtime if tokens and runtime else None,
        "droppedSamples": dropped_samples,
        "rewardAccuracy": _number(last.get("rewards/accuracies")),
        "rewardMargin": _number(last.get("rewards/margins")),
    }
    eval_logs = [h for h in history if "eval_loss" in h]
    if eval_logs:
        found.update(eval_metrics(eval_logs[-1]))
    return {k: v for k, v in found.items() if v is not None}
