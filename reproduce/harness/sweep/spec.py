"""What a sweep is: its specification (the experiment, preset, methods, batch sizes, seeds,
overrides and folders), the error it stops with before training, and the reports it asks for
when it ends. Nothing is read from globals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from date import Recipe

from ..run.experiment import Experiment
from ..run.settings import RunSettings


@dataclass(frozen=True)
class SweepSpec:
    """Everything a sweep depends on; nothing is read from globals."""

    experiment: Experiment
    preset: str
    methods: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    seeds: int
    base_seeds: int | None = None  # seeds at the base batch; None: the preset's
    device: str = "cpu"
    data_source: str = "local"
    data_dir: Path | None = None
    out_dir: Path = Path("results")
    recipe_overrides: Mapping[str, Any] = field(default_factory=dict)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    data_overrides: Mapping[str, Any] = field(default_factory=dict)
    run: RunSettings = field(default_factory=RunSettings)
    progress: bool = True
    estimate: bool = False  # time a few steps and print the training time first (never recorded)
    resume: bool = False
    command: tuple[str, ...] = ()

    @property
    def base_recipe(self) -> Recipe:
        return self.experiment.recipe_for(self.preset, self.recipe_overrides)

    @property
    def model_config(self) -> dict[str, Any]:
        preset = self.experiment.presets[self.preset]
        return {**self.experiment.model_defaults, **preset.model, **self.model_overrides}

    @property
    def data_config(self) -> dict[str, Any]:
        preset = self.experiment.presets[self.preset]
        return {**self.experiment.data_defaults, **preset.data, **self.data_overrides}

    @property
    def evals_per_epoch(self) -> float:
        return self.run.evals_per_epoch or self.experiment.presets[self.preset].evals_per_epoch


class SweepError(ValueError):
    """A problem with the user's input or files, found before training: exit code 2."""


@dataclass(frozen=True)
class Reports:
    """What a sweep writes once its runs are recorded, given by its caller: the command line
    passes the report layer's writers (``cli/reports.py``), because the sweep layer does not
    import the report layer. ``folder(spec)`` regenerates the tables, plots and paper diff of
    ``spec.out_dir``; ``budgets(spec)`` the budget report over the budget folders of a budget
    sweep's ``spec.out_dir``."""

    folder: Callable[[SweepSpec], object]
    budgets: Callable[[SweepSpec], object]
