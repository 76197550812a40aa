"""CpuDropout is torch's dropout with faster masks: same distribution, scaling, gradients, reproducibility."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tuneforge.trainer import cpu_dropout
from tuneforge.trainer.cpu_dropout import CpuDropout

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def test_elements_are_dropped_with_probability_p_and_the_rest_scaled() -> None:
    torch.manual_seed(0)
    p, x = 0.05, torch.ones(1000, 1000)
    y = CpuDropout(p)(x)

    dropped = int((y == 0).sum())
    expected, sigma = p * x.numel(), math.sqrt(p * (1 - p) * x.numel())
    assert abs(dropped - expected) < 5 * sigma
    assert torch.all((y == 0) | torch.isclose(y, torch.tensor(1 / (1 - p))))
    # and not in a pattern: rows and columns each see about p of their elements dropped
    assert (y == 0).float().mean(dim=0).max() < 0.12 and (y == 0).float().mean(dim=1).max() < 0.12


def test_the_gradient_is_the_mask() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    y = CpuDropout(0.3)(x)
    y.sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.where(y == 0, 0.0, 1 / 0.7).to(x.grad.dtype))


def test_masks_follow_torchs_seed() -> None:
    x = torch.randn(128, 64)
    torch.manual_seed(7)
    first = CpuDropout(0.5)(x)
    torch.manual_seed(7)
    again = CpuDropout(0.5)(x)
    other = CpuDropout(0.5)(x)
    assert torch.equal(first, again)
    assert not torch.equal(again, other)


def test_gradient_checkpointing_recomputes_the_same_mask() -> None:
    layer = torch.nn.Sequential(torch.nn.Linear(16, 16), CpuDropout(0.5), torch.nn.Linear(16, 4))
    x = torch.randn(8, 16)

    def grads(checkpointed: bool) -> list[torch.Tensor]:
        layer.zero_grad()
        torch.manual_seed(3)
        out = checkpoint(layer, x, use_reentrant=False) if checkpointed else layer(x)
        out.square().sum().backward()
        return [param.grad.clone() for param in layer.parameters() if param.grad is not None]

    assert all(torch.equal(a, b) for a, b in zip(grads(False), grads(True), strict=True))


def test_eval_mode_and_p_zero_are_the_identity_and_p_one_drops_all() -> None:
    x = torch.randn(10, 10)
    assert torch.equal(CpuDropout(0.5).eval()(x), x)
    assert torch.equal(CpuDropout(0.0)(x), x)
    assert torch.equal(CpuDropout(1.0)(x), F.dropout(x, 1.0, True))


@pytest.mark.parametrize("p", [1e-7, 1 - 1e-7])
def test_probabilities_below_the_masks_resolution_go_to_torch(p: float) -> None:
    torch.manual_seed(5)
    x = torch.ones(100, 100)
    ours = CpuDropout(p)(x)
    torch.manual_seed(5)
    assert torch.equal(ours, F.dropout(x, p, True))


def test_the_input_dtype_is_kept() -> None:
    assert CpuDropout(0.1)(torch.randn(4, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_a_probability_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        CpuDropout(1.5)


def test_install_replaces_every_lora_dropout_of_a_peft_model(tiny_model: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    lora_layers = [
        m for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)
    ]

    assert cpu_dropout.install(model) == len(lora_layers) > 0
    assert all(isinstance(m.lora_dropout["default"], CpuDropout) for m in lora_layers)
    assert all(m.lora_dropout["default"].p == 0.1 for m in lora_layers)
    model.train()
    loss = model(input_ids=torch.tensor([[1, 5, 9, 4]]), labels=torch.tensor([[1, 5, 9, 4]])).loss
    loss.backward()
    assert math.isfinite(loss.item())


def test_install_leaves_a_model_without_dropout_alone(tiny_model: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    assert cpu_dropout.install(model) == 0
    assert not any(isinstance(m, CpuDropout) for m in model.modules())
