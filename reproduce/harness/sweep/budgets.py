"""The epoch budget as a measured axis: the batch x method sweep repeated at several
epoch budgets E, each with its base recipe tuned at the base batch for that E.

Public uses of LEGW/DATE keep the epoch budget fixed across batch sizes (paper-facts.md), so a
batch k times larger gets k times fewer steps, and a verdict at one budget mixes the method with
the budget. Here, for each E on the preset's grid:

1. the experiment's tuning grid is trained at the base batch with E epochs and the point with
   the best final *validation* metric is kept (``tuning.run_tuning``; the test split is never
   read for the choice);
2. the sweep runs at E with that base recipe, scaled by every method with no re-tuning.

Each budget is an ordinary results folder (``OUT/E{E}``, with its own tables and paper diff);
the budget report (``report/budgets.py``) then reads them all (steps to result, the claim per
budget).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.records import read_record
from .running import run_sweep
from .spec import Reports, SweepError, SweepSpec
from .tuning import grid_points, run_tuning, tuning_point_spec


def budget_folder(out_dir: Path, epochs: float) -> Path:
    """``OUT/E20`` for a 20-epoch budget (``E2.5`` for 2.5)."""
    return Path(out_dir) / f"E{epochs:g}"


def budgets_of(spec: SweepSpec) -> tuple[float, ...]:
    """The budgets to run: the preset's grid, or the one ``--set epochs=E`` picks from it (to
    split a budget sweep over processes); SweepError when the preset has none or E is off it."""
    budgets = spec.experiment.presets[spec.preset].budgets
    if not budgets:
        raise SweepError(f"preset {spec.preset!r} of {spec.experiment.name} has no budgets")
    chosen = spec.recipe_overrides.get("epochs")
    if chosen is None:
        return budgets
    if chosen not in budgets:
        grid = ", ".join(f"{b:g}" for b in budgets)
        raise SweepError(f"--set epochs={chosen:g}: not one of the preset's budgets ({grid})")
    return (chosen,)


def tuned_point(tuning_dir: Path) -> dict[str, Any]:
    """The grid point a finished tuning chose (from its tuning.json); SweepError if none."""
    summary = read_record(tuning_dir / "tuning.json")
    best = (summary or {}).get("best")
    if not best:
        raise SweepError(
            f"{tuning_dir}: no finished tuning point to take the base recipe from (every grid "
            "point diverged, or the tuning did not finish)"
        )
    return dict(best["point"])


def stretched(spec: SweepSpec, epochs: float) -> dict[str, Any]:
    """Recipe overrides that run the base schedule's shape over ``epochs`` instead of its own
    budget E0, so that a longer budget is the same schedule, slower, not extra epochs at a decayed
    lr: poly, cosine and constant decays are already relative to the budget; an exponential
    decay's start moves to ``start x E/E0`` and its per-epoch rate becomes ``rate^(E0/E)`` (the
    same total decay over the stretched span; a staircase then steps every epoch, finer than the
    stretched stair); multistep milestones move to ``m x E/E0``. Warmup stays in epochs: it is
    what the scaling rules change with the batch, not with the budget."""
    own = {key: value for key, value in spec.recipe_overrides.items() if key != "epochs"}
    base = spec.experiment.recipe_for(spec.preset, own)
    factor = epochs / base.epochs
    changes: dict[str, Any] = {"epochs": epochs}
    if base.decay == "exponential" and factor != 1:
        changes["decay_start_epoch"] = base.decay_start_epoch * factor
        changes["decay_rate"] = base.decay_rate ** (1 / factor)
    if base.decay == "multistep" and factor != 1:
        changes["milestones"] = tuple(milestone * factor for milestone in base.milestones)
    return changes


def budget_spec(spec: SweepSpec, epochs: float, point: Mapping[str, Any]) -> SweepSpec:
    """The sweep at budget ``epochs`` with the tuned base-recipe ``point``."""
    return dataclasses.replace(
        spec,
        recipe_overrides={**spec.recipe_overrides, **stretched(spec, epochs), **point},
        out_dir=budget_folder(spec.out_dir, epochs),
    )


def run_budget_sweep(spec: SweepSpec, log=print, *, reports: Reports) -> list[Path]:
    """Tune (unless the preset says not to) and sweep at every budget of the spec's preset, then
    write the budget report (``reports.budgets``; each budget's sweep writes its own folder's).

    Resumable like a sweep: recorded tuning points and runs are skipped. The user's own
    recipe overrides apply at every budget; ``--set epochs=E`` runs budget E of the grid only.
    """
    tuned = tunes_budgets(spec)
    folders = []
    for epochs in budgets_of(spec):
        folder = budget_folder(spec.out_dir, epochs)
        point: Mapping[str, Any] = {}
        if tuned:
            tune_budget(spec, epochs, log=log, reports=reports)
            point = tuned_point(folder / "tuning")
            log(f"budget E = {epochs:g} epochs: base recipe {point} (best on validation); sweeping")
        else:
            log(f"budget E = {epochs:g} epochs: the {spec.preset} preset's base recipe (not tuned)")
        run_sweep(budget_spec(spec, epochs, point), log=log, reports=reports)
        folders.append(folder)
    reports.budgets(spec)
    return folders


def tunes_budgets(spec: SweepSpec) -> bool:
    """Whether the spec's budget preset tunes each budget's base recipe (``Preset.tune_budgets``);
    raises SweepError when it should but the experiment declares no tuning grid."""
    if not spec.experiment.presets[spec.preset].tune_budgets:
        return False
    if not spec.experiment.tuning_grid:
        raise SweepError(f"{spec.experiment.name} declares no tuning grid to tune each budget with")
    return True


def tune_budget(spec: SweepSpec, epochs: float, log=print, *, reports: Reports) -> Path:
    """Train the experiment's tuning grid at the base batch for ``epochs`` (OUT/E{E}/tuning).
    A grid key the user set (``--set lr=0.1``) trains that point only, so that the grid can be
    split over processes; a later call without it finds every point recorded."""
    grid = tuning_grid(spec)
    log(f"budget E = {epochs:g} epochs: tuning {grid} at the base batch")
    return run_tuning(tuning_spec(spec, epochs), grid, log=log, reports=reports)


def tuning_grid(spec: SweepSpec) -> dict[str, tuple[Any, ...]]:
    """The experiment's tuning grid, less the keys the user set (``--set lr=0.1``: that point)."""
    return {
        key: (spec.recipe_overrides[key],) if key in spec.recipe_overrides else values
        for key, values in spec.experiment.tuning_grid.items()
    }


def tuning_spec(spec: SweepSpec, epochs: float) -> SweepSpec:
    """The tuning at budget ``epochs``, in ``OUT/E{E}/tuning``."""
    return dataclasses.replace(
        spec,
        recipe_overrides={**spec.recipe_overrides, **stretched(spec, epochs)},
        out_dir=budget_folder(spec.out_dir, epochs) / "tuning",
    )


def tuning_point_specs(spec: SweepSpec, epochs: float) -> list[SweepSpec]:
    """The one-run sweeps of every grid point of budget ``epochs``'s tuning (what a launcher
    runs as jobs before the budget's sweep)."""
    return [
        tuning_point_spec(tuning_spec(spec, epochs), point)
        for point in grid_points(tuning_grid(spec))
    ]


def budget_of_record(record: Mapping[str, Any]) -> float:
    """A record's epoch budget (its recipe's epochs)."""
    return float(record["recipe"]["epochs"])
