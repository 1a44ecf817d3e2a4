"""Benchmark: one GNMT training step in tokens per second (`pytest benchmarks/test_bench_gnmt.py`).

The trainer's loop body (next bucketed batch of 64 pairs, ``accumulate_gradients`` with the
experiment's loss hook, clipping, Adam, ``DateScheduler``) on the quick preset's model (4 + 4
LSTM layers of 64, 4,000 subwords) and data (newstest2014's first 2,500 pairs of at most 50
subwords). Tokens are the real (unpadded) source and target subwords of the batch, the unit of
the reference's "Tok/s" (DeepLearningExamples GNMT README: "total tokens per second").
"""

from __future__ import annotations

import math

import torch

import date
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients

ROUNDS = 10
BATCH = 64


def test_gnmt_training_step_tokens_per_second(benchmark, tmp_path_factory):
    experiment = get_experiment("gnmt")
    quick = experiment.presets["quick"]
    cache = str(tmp_path_factory.mktemp("subwords"))
    data_config = {**experiment.data_defaults, **quick.data, "subword_cache": cache}
    data = experiment.build_data("local", None, data_config)
    recipe = date.scale(experiment.recipe_for("quick"), BATCH, "date")
    torch.manual_seed(0)
    model = experiment.build_model({**experiment.model_defaults, **quick.model}).train()
    optimizer = date.build_optimizer(model, recipe)
    scheduler = date.DateScheduler(optimizer, recipe, data.train.steps_per_epoch(BATCH))
    stream = data.train.stream(BATCH, seed=0)
    device = resolve_device("cpu")
    tokens: list[int] = []

    def step() -> float:
        batch = next(stream)
        tokens.append(int(batch.tensors[1].sum() + batch.tensors[3].sum()))
        optimizer.zero_grad(set_to_none=True)
        loss, _ = accumulate_gradients(experiment, model, batch, BATCH, {}, device)
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        return loss

    loss = benchmark.pedantic(step, rounds=ROUNDS, warmup_rounds=2, iterations=1)
    benchmark.extra_info["batch_size"] = BATCH
    if benchmark.stats is not None:  # None under --benchmark-disable (a functional run)
        mean_tokens = sum(tokens) / len(tokens)
        benchmark.extra_info["tokens_per_step"] = mean_tokens
        benchmark.extra_info["tokens_per_second"] = mean_tokens / benchmark.stats.stats.mean
    assert math.isfinite(loss)
