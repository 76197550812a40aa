"""Padding-free batches: chosen where safe, and the same loss and gradients as padded ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.manifests import BASE, merge

from tuneforge.api.finetunejob import FineTuneJob
from tuneforge.trainer.batching import batching_kwargs, padding_free_is_safe

REPO = Path(__file__).resolve().parents[2]


def spec(**fields):
    return FineTuneJob.model_validate(merge(BASE, {"spec": fields})).spec


def test_padding_free_is_the_default_for_text_sft():
    assert batching_kwargs(spec(), truncated=0) == {"padding_free": True, "max_length": None}


@pytest.mark.parametrize(
    ("fields", "truncated"),
    [
        ({}, 3),  # over-long samples: the padded path truncates them, padding-free would not
        ({"hyperparameters": {"packing": True}}, 0),  # packing is padding-free already
        ({"hyperparameters": {"batchSize": 1}}, 0),
        ({"trainer": "dpo", "dataset": {"source": "s3://data/p.jsonl", "format": "preference"}}, 0),
        ({"modality": "vision"}, 0),
        ({"provider": "unsloth"}, 0),
    ],
)
def test_the_padded_path_is_kept_where_padding_free_is_not_safe(fields, truncated):
    assert not padding_free_is_safe(spec(**fields), truncated=truncated)
    assert batching_kwargs(spec(**fields), truncated=truncated) == {}


def test_padding_free_batches_give_the_padded_loss_and_gradients(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    lines = (REPO / "examples/data/alpaca-sample.jsonl").read_text().splitlines()[:4]
    texts = [json.loads(line)["instruction"] + " " + json.loads(line)["output"] for line in lines]
    examples = [{"input_ids": tokenizer(text)["input_ids"]} for text in texts]
    assert len({len(e["input_ids"]) for e in examples}) > 1  # lengths differ: the padded batch has pads

    def loss_and_grads(padding_free: bool) -> tuple[float, list[torch.Tensor]]:
        collate = DataCollatorForLanguageModeling(
            pad_token_id=tokenizer.pad_token_id, padding_free=padding_free
        )
        batch = collate(examples)
        keys = ("input_ids", "labels", "attention_mask", "position_ids")
        model.zero_grad()
        # As trl's SFTTrainer calls it: no KV cache in training (with one, the packed mask is skipped).
        loss = model(**{k: v for k, v in batch.items() if k in keys}, use_cache=False).loss
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    padded_loss, padded_grads = loss_and_grads(False)
    free_loss, free_grads = loss_and_grads(True)
    assert free_loss == pytest.approx(padded_loss, rel=1e-5)
    for padded, free in zip(padded_grads, free_grads, strict=True):
        torch.testing.assert_close(free, padded, rtol=1e-4, atol=1e-6)
