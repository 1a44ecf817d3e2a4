"""Planning a sweep: every (method, batch size, seed) run with its resolved recipe, before
anything is trained or written.

At the base batch (k = 1) several methods resolve to the same recipe; such a run is planned once
and recorded for each method, marked ``same_run_as``. A run's configuration (``run_config``) and
its hash (``run_key``) decide whether a record or checkpoint belongs to it. ``--plan`` prints the
plan (``resolved_plan_table``); reports check a folder's coverage against its preset's plan
(``folder_plan``); launchers and shards split it into groups (``run_groups``, ``shard_runs``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import date
from date import Recipe

from ..core.records import record_name
from ..run.experiment import Experiment, TrainData
from ..run.provenance import config_key
from .spec import SweepSpec


@dataclass(frozen=True)
class PlannedRun:
    method: str
    batch_size: int
    seed: int
    recipe: Recipe
    same_run_as: str | None = None  # record name of the identical run trained in its place

    @property
    def name(self) -> str:
        return record_name(self.method, self.batch_size, self.seed)


def plan_runs(spec: SweepSpec) -> list[PlannedRun]:
    """Every run of the sweep, with its resolved recipe; raises ValueError on any invalid one."""
    base = spec.base_recipe
    preset = spec.experiment.presets[spec.preset]
    planned: list[PlannedRun] = []
    trained: dict[tuple[str, int], str] = {}  # (recipe, seed) -> record name of the trained run
    float32_max = 3.4028234663852886e38  # torch.finfo(torch.float32).max
    for batch_size in spec.batch_sizes:
        seeds = spec.seeds
        if batch_size == base.batch_size:
            seeds = max(seeds, preset.base_seeds if spec.base_seeds is None else spec.base_seeds)
        decisive = batch_size % base.batch_size == 0 and (
            batch_size // base.batch_size in preset.decisive_scales
        )
        for method in spec.methods:
            recipe = date.scale(base, batch_size, method)
            if recipe.lr > float32_max:
                raise ValueError(
                    f"lr={base.lr:g}: the {method} peak lr at batch {batch_size} is "
                    f"{recipe.lr:g}, beyond float32's range (the parameters' dtype); use a "
                    "smaller --set lr"
                )
            method_seeds = seeds
            if decisive and date.canonical_method(method) in preset.decisive_methods:
                method_seeds = max(seeds, preset.decisive_seeds)
                if spec.base_seeds is not None:  # --seeds N: N everywhere
                    method_seeds = spec.base_seeds
            for seed in range(method_seeds):
                identity = (json.dumps(recipe.to_dict(), sort_keys=True), seed)
                run = PlannedRun(date.canonical_method(method), batch_size, seed, recipe)
                if identity in trained:
                    run = dataclasses.replace(run, same_run_as=trained[identity])
                else:
                    trained[identity] = run.name
                planned.append(run)
    return planned


def preset_plan(
    experiment: Experiment, preset: str, recipe_overrides: Mapping[str, Any] | None = None
) -> list[PlannedRun]:
    """Every run of ``preset`` as the preset defines it (its methods, batches and seeds), from
    the base recipe with ``recipe_overrides`` (a budget's epochs and tuned lr): what a report
    checks a results folder's coverage against."""
    settings = experiment.presets[preset]
    return plan_runs(
        SweepSpec(
            experiment=experiment,
            preset=preset,
            methods=settings.methods,
            batch_sizes=settings.batch_sizes,
            seeds=settings.seeds,
            recipe_overrides=dict(recipe_overrides or {}),
        )
    )


def folder_plan(experiment: Experiment, record: Mapping[str, Any]) -> list[PlannedRun] | None:
    """The preset plan the folder of ``record`` is checked against: the preset's own, and for a
    budget folder the preset's at that budget with the base recipe tuned for it (its epochs and
    tuning-grid keys, taken from the record's base recipe). None when there is no plan."""
    preset = record.get("preset")
    if preset not in experiment.presets:
        return None
    overrides = {}
    if experiment.presets[preset].budgets:  # the budget's (stretched) schedule and tuned point
        base = record.get("base_recipe") or {}
        keys = ("epochs", "decay_start_epoch", "decay_rate", "milestones", *experiment.tuning_grid)
        overrides = {key: base[key] for key in keys if key in base}
        if "milestones" in overrides:
            overrides["milestones"] = tuple(overrides["milestones"])
    try:
        return preset_plan(experiment, preset, overrides)
    except ValueError:  # the preset's batches cannot all be planned from this recipe
        return None


def run_config(spec: SweepSpec, run: PlannedRun) -> dict[str, Any]:
    """What determines this run's result: a changed recipe, model or data config retrains it."""
    return {
        "experiment": spec.experiment.name,
        "recipe": run.recipe.to_dict(),
        "seed": run.seed,
        "model": spec.model_config,
        "data": {
            key: value
            for key, value in spec.data_config.items()
            if key not in spec.experiment.data_runtime_keys
        },
        "data_source": spec.data_source,
        "evals_per_epoch": spec.evals_per_epoch,
        "precision": spec.run.precision,
        "time_to_target": spec.experiment.time_to_target.to_dict()
        if spec.experiment.time_to_target
        else None,
    }


def run_key(spec: SweepSpec, run: PlannedRun) -> str:
    """The hash of ``run_config``: records and checkpoints carry it."""
    return config_key(run_config(spec, run))


def run_examples(run: PlannedRun, train: TrainData) -> float:
    """Examples a run trains on: its steps times its batch."""
    return date.total_steps(run.recipe, train.steps_per_epoch(run.batch_size)) * run.batch_size


@dataclass(frozen=True)
class RunGroup:
    """A run to train and the runs recorded as copies of it (``same_run_as``, at k = 1): the
    unit a launcher hands to one job, so that a copy is written once its source is recorded."""

    source: PlannedRun
    copies: tuple[PlannedRun, ...] = ()

    @property
    def runs(self) -> tuple[PlannedRun, ...]:
        return (self.source, *self.copies)


def run_groups(planned: list[PlannedRun]) -> list[RunGroup]:
    """The plan as groups, in plan order of their sources."""
    copies: dict[str, list[PlannedRun]] = {}
    for run in planned:
        if run.same_run_as is not None:
            copies.setdefault(run.same_run_as, []).append(run)
    return [
        RunGroup(run, tuple(copies.get(run.name, ()))) for run in planned if run.same_run_as is None
    ]


def shard_runs(planned: list[PlannedRun], index: int, count: int) -> list[PlannedRun]:
    """Shard ``index`` of ``count`` (0-based): every ``count``-th group of the plan, starting at
    ``index``, so that the shards cover the plan exactly once, each holding a mix of batch sizes,
    and every copy sits in the shard of the run it copies."""
    chosen = {run.name for group in run_groups(planned)[index::count] for run in group.runs}
    return [run for run in planned if run.name in chosen]


def resolved_plan_table(spec: SweepSpec, train_data: TrainData | None = None) -> str:
    """The resolved recipe of every planned run, as a table (``--plan``); with the training data,
    also the warmup and total steps the trainer will take."""
    from tabulate import tabulate

    rows = []
    for run in plan_runs(spec):
        recipe = run.recipe
        row = [
            run.method,
            run.batch_size,
            run.seed,
            f"{recipe.lr:.4g}",
            f"{recipe.warmup_epochs:.4g}",
        ]
        if train_data is not None:
            steps_per_epoch = train_data.steps_per_epoch(run.batch_size)
            row += [
                f"{date.warmup_steps(recipe, steps_per_epoch):.1f}",
                date.total_steps(recipe, steps_per_epoch),
            ]
        row += [f"{recipe.epochs:g}", recipe.decay, recipe.optimizer, run.same_run_as or ""]
        rows.append(row)
    headers = ["method", "batch", "seed", "peak lr", "warmup epochs"]
    if train_data is not None:
        headers += ["warmup steps", "total steps"]
    headers += ["epochs", "decay", "optimizer", "same run as"]
    return tabulate(rows, headers=headers, tablefmt="github")


class CountedExamples:
    """The training split's size only: what --plan needs when the data itself is absent."""

    def __init__(self, size: int) -> None:
        self.size = size

    def steps_per_epoch(self, batch_size: int) -> float:
        return self.size / batch_size


def plan_train_data(spec: SweepSpec) -> Any:
    """The training data for --plan: its declared size where the experiment declares one (data
    that is not shipped: reading it, a 1.28M-file listing or a hub download, is no job for a
    plan), else the real split."""
    experiment = spec.experiment
    if experiment.train_examples is not None:
        return CountedExamples(experiment.train_examples(spec.data_config))
    return experiment.build_data(spec.data_source, spec.data_dir, spec.data_config).train
