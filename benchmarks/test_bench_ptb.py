"""Benchmark: one ptb_small training step at batch 20 through the harness (run with
`pytest benchmarks/test_bench_ptb.py`).

The step is the trainer's loop body: the stream's next window, ``accumulate_gradients`` (one
micro-batch of 20 rows, the carried state), gradient clipping, SGD and the DATE scheduler, on the
full small model (2 x 200 LSTM, 10,000-word softmax; Zaremba et al. 2014). The tokens are drawn
uniformly from the vocabulary (seeded): the cost of a step does not depend on which words they
are, and the benchmark then needs no data files.
"""

from __future__ import annotations

import math

import torch

import date
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients
from reproduce.ptb_small.data import BPTTStream

BATCH_SIZE = 20
TOKENS = 200_000  # 10,000 columns of 20 rows: 499 windows an epoch, no epoch boundary in a run


def test_ptb_small_training_step_at_batch_20(benchmark):
    experiment = get_experiment("ptb_small")
    recipe = experiment.base_recipe
    assert recipe.batch_size == BATCH_SIZE
    generator = torch.Generator().manual_seed(0)
    vocab_size = experiment.model_defaults["vocab_size"]
    data = BPTTStream(
        torch.randint(0, vocab_size, (TOKENS,), generator=generator),
        bptt=experiment.data_defaults["bptt"],
    )
    torch.manual_seed(0)
    model = experiment.build_model(experiment.model_defaults)
    optimizer = date.build_optimizer(model, recipe)
    scheduler = date.DateScheduler(optimizer, recipe, data.steps_per_epoch(BATCH_SIZE))
    stream = data.stream(BATCH_SIZE, seed=0)
    states: dict[int, object] = {}
    device = resolve_device("cpu")

    def step() -> float:
        batch = next(stream)
        optimizer.zero_grad(set_to_none=True)
        loss, _ = accumulate_gradients(experiment, model, batch, BATCH_SIZE, states, device)
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        return loss

    loss = benchmark.pedantic(step, rounds=20, warmup_rounds=2, iterations=1)
    tokens_per_step = BATCH_SIZE * data.bptt
    benchmark.extra_info["tokens_per_step"] = tokens_per_step
    if benchmark.stats is not None:  # None under --benchmark-disable (a plain functional run)
        benchmark.extra_info["tokens_per_second"] = tokens_per_step / benchmark.stats.stats.mean
    assert math.isfinite(loss)
    assert len(states) == 1  # one micro-batch, its state carried to the next step
