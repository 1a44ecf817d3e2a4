"""Benchmark: one step of each optimizer of ``date`` (``date.OPTIMIZERS``, built by
``date.build_optimizer``) on a small model with fixed gradients. Run with `pytest benchmarks`.

The model has both of build_optimizer's parameter groups (matrices with weight decay; biases and
a LayerNorm without it, and without LARS/LAMB's trust ratio), about 70k parameters: the step's
cost is then the optimizer's per-parameter work, not one large tensor.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import date
from date.recipe import MOMENTUM_OPTIMIZERS

WIDTH = 256
ROUNDS = 200


def small_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(WIDTH, WIDTH), nn.LayerNorm(WIDTH), nn.ReLU(), nn.Linear(WIDTH, 10)
    )


@pytest.mark.parametrize("optimizer_name", date.OPTIMIZERS)
def test_optimizer_step(benchmark, optimizer_name):
    torch.manual_seed(0)
    model = small_model()
    recipe = date.Recipe(
        batch_size=256,
        lr=0.01,
        epochs=1,
        optimizer=optimizer_name,
        momentum=0.9 if optimizer_name in MOMENTUM_OPTIMIZERS else 0.0,
        weight_decay=1e-4,
    )
    optimizer = date.build_optimizer(model, recipe)
    generator = torch.Generator().manual_seed(1)
    for parameter in model.parameters():
        parameter.grad = 1e-3 * torch.randn(parameter.shape, generator=generator)
    before = [parameter.detach().clone() for parameter in model.parameters()]

    benchmark.pedantic(optimizer.step, rounds=ROUNDS, warmup_rounds=5, iterations=1)
    benchmark.extra_info["parameters"] = sum(p.numel() for p in model.parameters())
    moved = [
        not torch.equal(old, new.detach())
        for old, new in zip(before, model.parameters(), strict=True)
    ]
    assert all(moved), f"{optimizer_name} left some parameters unchanged"
