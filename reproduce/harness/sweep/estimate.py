"""How long training will take on this device, from a few timed steps (``--plan``).

Generic over experiments: one micro-batch goes through ``accumulate_gradients`` (the experiment's
loss hook, forward and backward, as the trainer runs it) a few times, then one optimizer step, on
a throw-away model. The batch is the experiment's ``synthetic_batch`` where it declares one (data
that is not shipped, e.g. ImageNet), else the first batch of the training stream. The cost of a
run is then ``total_steps x (examples per device x seconds per example + optimizer seconds)``.
Evaluation, data loading and checkpoints are not included, and neither is the communication of
data parallelism (each device's share is taken as ideal).

Timings depend on the machine and its load: they are printed, never recorded, and nothing a run
trains depends on them.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from date import Recipe, build_optimizer, total_steps

from ..run.devices import Device, resolve_device
from ..run.experiment import Batch, Experiment
from ..run.trainer import accumulate_gradients, default_micro_batch_size
from .planning import plan_runs
from .spec import SweepSpec


@dataclass(frozen=True)
class StepCost:
    """Measured cost of training on one device: a micro-batch's forward and backward, and one
    optimizer step (medians over the timed steps, the first step being a warmup)."""

    device: str
    micro_batch_size: int
    micro_batch_seconds: float
    optimizer_seconds: float
    steps_timed: int
    batch_source: str

    @property
    def seconds_per_example(self) -> float:
        return self.micro_batch_seconds / self.micro_batch_size

    def step_seconds(self, batch_size: int, world_size: int = 1) -> float:
        """One optimizer step of a global batch split evenly over ``world_size`` devices."""
        return batch_size / world_size * self.seconds_per_example + self.optimizer_seconds

    def run_seconds(self, batch_size: int, steps: int, world_size: int = 1) -> float:
        return steps * self.step_seconds(batch_size, world_size)


def timing_batch(
    experiment: Experiment,
    model_config: Mapping[str, Any],
    data_config: Mapping[str, Any],
    train: Any,
    size: int,
) -> tuple[Batch, str]:
    """A batch of ``size`` examples to time, and where it came from."""
    if experiment.synthetic_batch is not None:
        return experiment.synthetic_batch(model_config, data_config, size), "synthetic batch"
    if hasattr(train, "stream"):
        return next(train.stream(size, seed=0)), "first training batch"
    raise ValueError(
        f"{experiment.name}: nothing to time without the data (the experiment declares no "
        "synthetic_batch)"
    )


def measure_step_cost(
    experiment: Experiment,
    recipe: Recipe,
    model_config: Mapping[str, Any],
    data_config: Mapping[str, Any],
    device: Device,
    micro_batch_size: int,
    train: Any = None,
    precision: str = "fp32",
    steps: int = 3,
) -> StepCost:
    """Time ``steps`` forward-and-backward passes of one micro-batch and as many optimizer steps
    (after one untimed warmup step) on a fresh model; the caller's RNG state is left untouched."""
    batch, source = timing_batch(experiment, model_config, data_config, train, micro_batch_size)
    passes: list[float] = []
    updates: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = experiment.build_model(model_config).to(device.torch_device)
        model.train()
        optimizer = build_optimizer(model, recipe)
        for _ in range(steps + 1):
            optimizer.zero_grad(set_to_none=True)
            device.synchronize()
            started = time.perf_counter()
            accumulate_gradients(experiment, model, batch, micro_batch_size, {}, device, precision)
            device.synchronize()
            backward_done = time.perf_counter()
            optimizer.step()
            device.mark_step()
            device.synchronize()
            passes.append(backward_done - started)
            updates.append(time.perf_counter() - backward_done)
    return StepCost(
        device=device.kind,
        micro_batch_size=micro_batch_size,
        micro_batch_seconds=statistics.median(passes[1:]),
        optimizer_seconds=statistics.median(updates[1:]),
        steps_timed=steps,
        batch_source=source,
    )


def duration(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps the number readable."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.3g} s"


def sweep_estimate_table(cost: StepCost, runs: list[Any], steps_per_epoch: Any) -> str:
    """Per batch size: seconds per epoch and per run, and the total over the runs that are
    trained (``runs``: PlannedRun-like, with batch_size, recipe and same_run_as)."""
    from tabulate import tabulate

    rows, total, trained_total = [], 0.0, 0
    for batch_size in sorted({run.batch_size for run in runs}):
        at_batch = [run for run in runs if run.batch_size == batch_size]
        trained = [run for run in at_batch if run.same_run_as is None]
        per_epoch = steps_per_epoch(batch_size)
        seconds = [
            cost.run_seconds(batch_size, total_steps(run.recipe, per_epoch)) for run in trained
        ]
        total += math.fsum(seconds)
        trained_total += len(trained)
        rows.append(
            [
                batch_size,
                f"{per_epoch:.1f}",
                duration(per_epoch * cost.step_seconds(batch_size)),
                duration(max(seconds)) if seconds else "-",
                len(trained),
                duration(math.fsum(seconds)) if seconds else "-",
            ]
        )
    headers = ["batch", "steps/epoch", "per epoch", "per run", "runs to train", "subtotal"]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    return f"{table}\n\nWhole sweep: {trained_total} runs to train, about {duration(total)}."


def describe(cost: StepCost, device_name: str) -> str:
    return (
        f"Estimated training time on this {cost.device} ({device_name}), from "
        f"{cost.steps_timed} timed steps of one micro-batch of {cost.micro_batch_size} "
        f"({cost.batch_source}): {cost.micro_batch_seconds:.3g} s forward and backward, "
        f"{cost.optimizer_seconds:.3g} s per optimizer step. Training only (no evaluation, data "
        "loading or checkpoints), on one device: with N devices, divide by N at best."
    )


def plan_estimate(spec: SweepSpec, train: Any) -> str:
    """--plan's time estimate: a few training steps timed on the sweep's device, multiplied out
    over the planned runs. Raises ValueError (exit 2) when the device is not there."""
    device = resolve_device(spec.device)
    runs = plan_runs(spec)
    micro = spec.run.micro_batch_size or default_micro_batch_size(
        spec.experiment, min(run.batch_size for run in runs), device
    )
    cost = measure_step_cost(
        spec.experiment,
        spec.base_recipe,
        spec.model_config,
        spec.data_config,
        device,
        micro,
        train=train,
        precision=spec.run.precision,
    )
    return "\n\n".join(
        [
            describe(cost, device.describe()["device_name"]),
            sweep_estimate_table(cost, runs, train.steps_per_epoch),
        ]
    )
