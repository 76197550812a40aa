"""spec.trainer dpo: Direct Preference Optimization with trl's DPOTrainer.

The policy is the base model with a fresh LoRA (or QLoRA) adapter; the
reference is the same base with the adapter switched off (trl does that
when it is handed a PEFT config and no ref_model), so no second copy of the
model is loaded. Hyperparameters map as for SFT (one set of training
arguments, ``trainer_kwargs``), plus ``dpoBeta``. trl's DPO turns dropout off
in the policy, as the method expects (policy and reference log-probabilities
must be comparable). DPO logs ``rewards/accuracies`` and ``rewards/margins``,
which tuneforge.trainer.metrics turns into status metrics.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from tuneforge.api.finetunejob import Hyperparameters

log = logging.getLogger(__name__)


def dpo_config_kwargs(training: dict[str, Any], hp: Hyperparameters) -> dict[str, Any]:
    """DPOConfig keyword arguments: the shared training arguments DPOConfig has, plus beta.

    SFT-only arguments (``packing``...) are left out; packing with dpo is refused at admission.
    """
    from trl.trainer.dpo_config import DPOConfig

    accepted = {f.name for f in dataclasses.fields(DPOConfig)}
    left_out = sorted(k for k in training if k not in accepted)
    if left_out:
        log.debug("DPO ignores the SFT-only arguments %s", ", ".join(left_out))
    return {k: v for k, v in training.items() if k in accepted} | {"beta": hp.dpo_beta}


def build_dpo_trainer(
    training: dict[str, Any],
    hp: Hyperparameters,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]] | None,
    model: Any,
    tokenizer: Any,
    peft_config: Any,
) -> Any:
    """A DPOTrainer on preference rows ({prompt, chosen, rejected}), ready to train."""
    import datasets
    from transformers.trainer_callback import PrinterCallback
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # the base, with the adapter off
        args=DPOConfig(**dpo_config_kwargs(training, hp)),
        train_dataset=datasets.Dataset.from_list(train_rows),
        eval_dataset=datasets.Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    # Our callback reports progress; transformers' printer would dump every log dict on stdout.
    trainer.remove_callback(PrinterCallback)
    return trainer
