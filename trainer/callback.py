"""A transformers TrainerCallback that feeds the Reporter as training goes."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from tuneforge.reporting import Reporter


def tokens_per_second(
    previous: tuple[float, float] | None, now: float, num_tokens: float | None
) -> float | None:
    """Throughput since the previous (time, tokens) sample."""
    if previous is None or num_tokens is None:
        return None
    then, tokens_then = previous
    if now <= then or num_tokens < tokens_then:
        return None
    return (num_tokens - tokens_then) / (now - then)


class ReporterCallback(TrainerCallback):
    """Progress at every log step, eval metrics after every evaluation."""

    def __init__(self, reporter: Reporter, *, clock: Any = time.monotonic) -> None:
        self.reporter = reporter
        self.clock = clock
        self._sample: tuple[float, float] | None = None
        self.last_tokens_per_second: float | None = None
        self.last_loss: float | None = None

    def _progress(self, state: Any, message: str) -> None:
        self.reporter.progress(
            step=state.global_step,
            total_steps=state.max_steps or None,
            epoch=state.epoch,
            total_epochs=float(state.num_train_epochs) if state.num_train_epochs else None,
            loss=self.last_loss,
            tokens_per_second=self.last_tokens_per_second,
            message=message,
        )

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sample = (self.clock(), 0.0)
        self._progress(state, "training")

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        logs = logs or {}
        if "loss" not in logs:
            return  # evaluation and end-of-training summaries come through other hooks
        now = self.clock()
        num_tokens = logs.get("num_tokens")
        rate = tokens_per_second(self._sample, now, num_tokens)
        if rate is not None and num_tokens is not None:
            self.last_tokens_per_second = rate
            self._sample = (now, float(num_tokens))
        self.last_loss = float(logs["loss"])
        self._progress(state, "training")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The last step is reported even when it is not a logging step.
        self._progress(state, "finishing")

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        from tuneforge.trainer.metrics import eval_metrics

        found = eval_metrics(metrics or {})
        if found:
            self.reporter.metrics(**found)
        self._progress(state, "evaluated" if state.global_step < (state.max_steps or 0) else "finishing")
