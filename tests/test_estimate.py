"""--plan's time estimate (harness/sweep/estimate.py): the arithmetic, and timing real steps
of any experiment without disturbing the caller's random state."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import date
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.sweep import estimate


def test_a_run_costs_its_steps_times_the_examples_and_the_optimizer_step():
    cost = estimate.StepCost("cpu", 4, 2.0, 0.25, 3, "synthetic batch")
    assert cost.seconds_per_example == 0.5
    assert cost.step_seconds(64) == 64 * 0.5 + 0.25
    assert cost.step_seconds(64, world_size=8) == 8 * 0.5 + 0.25
    assert cost.run_seconds(64, steps=10) == 10 * (32 + 0.25)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.5, "0.5 s"), (100, "100 s"), (125, "2.1 min"), (7_300, "2.0 h"), (200_000, "2.3 d")],
)
def test_durations_are_shown_in_a_readable_unit(seconds, shown):
    assert estimate.duration(seconds) == shown


def test_the_sweep_table_adds_up_the_runs_that_are_trained():
    recipe = date.Recipe(batch_size=10, lr=0.1, epochs=2)
    runs = [
        SimpleNamespace(batch_size=10, recipe=recipe, same_run_as=None),
        SimpleNamespace(batch_size=10, recipe=recipe, same_run_as="shared"),  # not trained
        SimpleNamespace(batch_size=20, recipe=recipe.replace(batch_size=20), same_run_as=None),
    ]
    cost = estimate.StepCost("cpu", 1, 1.0, 0.0, 3, "synthetic batch")  # 1 s per example
    table = estimate.sweep_estimate_table(cost, runs, lambda batch: 100 / batch)
    # each run: 2 epochs of 100 examples = 200 s; two trained runs
    assert "Whole sweep: 2 runs to train, about 6.7 min." in table
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    assert rows[2] == ["10", "10.0", "100 s", "3.3 min", "1", "3.3 min"]
    assert rows[3] == ["20", "5.0", "100 s", "3.3 min", "1", "3.3 min"]


@pytest.mark.parametrize("name", ["mnist_lstm", "imagenet_resnet50"])
def test_timing_real_steps_leaves_the_random_state_alone(name):
    experiment = get_experiment(name)
    smoke = experiment.presets["smoke"]
    model_config = {**experiment.model_defaults, **smoke.model}
    data_config = {**experiment.data_defaults, **smoke.data}
    train = None
    if experiment.synthetic_batch is None:
        train = experiment.build_data("local", None, data_config).train
    state = torch.get_rng_state()
    cost = estimate.measure_step_cost(
        experiment,
        experiment.recipe_for("smoke"),
        model_config,
        data_config,
        resolve_device("cpu"),
        micro_batch_size=2,
        train=train,
        steps=2,
    )
    assert torch.equal(torch.get_rng_state(), state)
    assert cost.micro_batch_seconds > 0 and cost.optimizer_seconds > 0
    assert cost.micro_batch_size == 2 and cost.steps_timed == 2
    expected = "first training batch" if train is not None else "synthetic batch"
    assert cost.batch_source == expected


def test_an_experiment_with_nothing_to_time_says_so():
    experiment = get_experiment("mnist_lstm")
    with pytest.raises(ValueError, match="nothing to time"):
        estimate.timing_batch(experiment, {}, {}, train=None, size=2)
