"""Benchmark: one training step of every registered experiment (parametrized over the registry,
so a new experiment is benchmarked when it is added). Run with `pytest benchmarks`.

The step is the trainer's loop body (reproduce.harness.run.trainer.train): the stream's next global
batch, ``accumulate_gradients`` (one micro-batch, the experiment's loss hook, backward, gradient
division by the item count), gradient clipping when the recipe clips, ``date``'s optimizer and
``DateScheduler``. Model, data slice and batch are the experiment's smoke preset, so the numbers
measure the harness and the small model rather than a big matrix multiply.
"""

from __future__ import annotations

import math

import pytest
import torch

import date
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.registry import experiments
from reproduce.harness.run.trainer import accumulate_gradients

ROUNDS = 30


@pytest.mark.parametrize("name", list(experiments()))
def test_training_step_of_the_smoke_model(benchmark, name):
    experiment = experiments()[name]
    smoke = experiment.presets["smoke"]
    recipe = experiment.recipe_for("smoke")
    data = experiment.build_data("local", None, {**experiment.data_defaults, **smoke.data})
    torch.manual_seed(0)
    model = experiment.build_model({**experiment.model_defaults, **smoke.model})
    model.train()
    optimizer = date.build_optimizer(model, recipe)
    steps_per_epoch = data.train.steps_per_epoch(recipe.batch_size)
    scheduler = date.DateScheduler(optimizer, recipe, steps_per_epoch)
    stream = data.train.stream(recipe.batch_size, seed=0)
    states: dict[int, object] = {}
    device = resolve_device("cpu")

    def step() -> float:
        batch = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss, _ = accumulate_gradients(experiment, model, batch, recipe.batch_size, states, device)
        if recipe.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        return loss

    loss = benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=3, iterations=1)
    benchmark.extra_info["batch_size"] = recipe.batch_size
    if benchmark.stats is not None:  # None under --benchmark-disable (a functional run)
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["examples_per_second"] = recipe.batch_size / mean
    assert math.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
