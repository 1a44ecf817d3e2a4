"""The warmup grid: what decides DATE vs sqrt at the claim's scale (x64 for MNIST-LSTM).

At batch k x B0, DATE and sqrt scaling give the same peak lr (lr0 x sqrt(k)) and differ only in
the warmup: DATE warms up for w0 x k epochs (You et al. SC'19; arXiv 1901.08256, "linear-epoch
gradual warmup"), sqrt for w0 (Krizhevsky 2014; Hoffer et al. 2017). The grid trains the
claim's batch at one epoch budget with the sqrt lr and warmups w0 x m for a few m between 1
(sqrt) and k (DATE), for each base lr of the experiment's tuning grid, so that one table shows
how much the verdict depends on the warmup and on which base lr was chosen.

No new training path: each cell is an ordinary ``reproduce/run.py`` sweep (the command is
``cli/warmup_grid.py``). ``--set`` overrides
the *base* recipe, which the method then scales (``SweepSpec.base_recipe``, then ``date.scale``),
and ``sqrt`` keeps the warmup epochs as they are, so ``--methods sqrt --set warmup_epochs=W``
trains exactly lr0 x sqrt(k) with W warmup epochs at batch k x B0; W = w0 x k is DATE's recipe.
The base-batch runs of each lr (its tolerance band) are trained with the unchanged w0.

Layout: ``OUT/lr=LR/base`` (the base batch, ``base_seeds`` seeds) and ``OUT/lr=LR/warmup_xM``
(the claim's batch, ``seeds`` seeds), each an ordinary results folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The method whose lr every cell uses; the warmup is set through the base recipe.
GRID_METHOD = "sqrt"
#: Warmup multipliers of w0 (1 = sqrt's warmup, 64 = DATE's at x64), a factor 4 apart.
DEFAULT_MULTIPLIERS = (1.0, 4.0, 16.0, 64.0)
#: E = 20: where the published budget sweep has DATE at x64 on the rising part of its curve
#: (results/mnist_lstm/budget) and a run at x64 costs minutes on one CPU thread.
DEFAULT_EPOCHS = 20.0
DEFAULT_SEEDS = 2  # at the claim's batch, per cell
DEFAULT_BASE_SEEDS = 3  # at the base batch, per lr: the tolerance band
GRID_FOLDER = "warmup_grid"


def lr_folder(out_dir: Path, lr: float) -> Path:
    """``OUT/lr=0.2``: the cells of one base lr."""
    return Path(out_dir) / f"lr={lr:g}"


@dataclass(frozen=True)
class GridCell:
    """One results folder of the grid: the base batch of an lr (``multiplier`` None), or the
    claim's batch with warmup ``multiplier`` x w0."""

    lr: float
    multiplier: float | None
    folder: Path
    batch_size: int
    seeds: int
    warmup_epochs: float  # the base recipe's warmup this cell sets (scaled by sqrt: unchanged)

    def run_arguments(self, experiment: str, preset: str, epochs: float) -> list[str]:
        """The ``reproduce/run.py`` arguments that train this cell."""
        return [
            experiment,
            "--preset",
            preset,
            "--methods",
            GRID_METHOD,
            "--batch-sizes",
            str(self.batch_size),
            "--seeds",
            str(self.seeds),
            "--set",
            f"epochs={epochs:g}",
            "--set",
            f"lr={self.lr:g}",
            "--set",
            f"warmup_epochs={self.warmup_epochs:g}",
            "--out",
            self.folder.as_posix(),
        ]


@dataclass(frozen=True)
class WarmupGrid:
    """Every cell of the grid; built from an experiment's facts by ``grid_for``."""

    experiment: str
    preset: str
    out_dir: Path
    base_batch_size: int
    scale: int
    base_warmup_epochs: float  # w0
    epochs: float
    lrs: tuple[float, ...]
    multipliers: tuple[float, ...]
    seeds: int
    base_seeds: int

    def __post_init__(self) -> None:
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise ValueError(f"the base lrs must be positive numbers, got {self.lrs}")
        if not self.multipliers or any(not m > 0 for m in self.multipliers):
            raise ValueError(f"the warmup multipliers must be positive, got {self.multipliers}")
        if not self.epochs > 0 or self.seeds < 1 or self.base_seeds < 1:
            raise ValueError("epochs must be > 0 and seeds, base seeds >= 1")
        too_long = [m for m in self.multipliers if m * self.base_warmup_epochs > self.epochs]
        if too_long:
            raise ValueError(
                f"warmup multiplier(s) {', '.join(f'{m:g}' for m in too_long)} x w0 = "
                f"{self.base_warmup_epochs:g} epochs exceed the budget of {self.epochs:g} epochs"
            )

    @property
    def batch_size(self) -> int:
        """The claim's batch: scale x the base batch."""
        return self.scale * self.base_batch_size

    def cells(self) -> list[GridCell]:
        """Per lr: its base-batch cell, then one cell per warmup multiplier."""
        cells = []
        for lr in self.lrs:
            folder = lr_folder(self.out_dir, lr)
            cells.append(
                GridCell(
                    lr,
                    None,
                    folder / "base",
                    self.base_batch_size,
                    self.base_seeds,
                    self.base_warmup_epochs,
                )
            )
            for multiplier in self.multipliers:
                cells.append(
                    GridCell(
                        lr,
                        multiplier,
                        folder / f"warmup_x{multiplier:g}",
                        self.batch_size,
                        self.seeds,
                        multiplier * self.base_warmup_epochs,
                    )
                )
        return cells

    def run_count(self) -> dict[int, int]:
        """Runs to train per batch size."""
        counts: dict[int, int] = {}
        for cell in self.cells():
            counts[cell.batch_size] = counts.get(cell.batch_size, 0) + cell.seeds
        return counts


def grid_for(
    experiment: Any,
    out_dir: Path,
    *,
    preset: str = "full",
    epochs: float = DEFAULT_EPOCHS,
    lrs: tuple[float, ...] | None = None,
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS,
    seeds: int = DEFAULT_SEEDS,
    base_seeds: int = DEFAULT_BASE_SEEDS,
) -> WarmupGrid:
    """The grid of an ``Experiment`` (read through its fields only): its base batch and w0 from
    the preset's recipe, the scale of its first claim, the base lrs of its tuning grid unless
    ``lrs`` is given. ValueError when the experiment has no claim or no lr grid."""
    if not experiment.claims:
        raise ValueError(f"{experiment.name} has no claim, so no scale to study")
    if lrs is None:
        lrs = tuple(experiment.tuning_grid.get("lr", ()))
        if not lrs:
            raise ValueError(f"{experiment.name} has no lr in its tuning grid; pass the lrs")
    base = experiment.recipe_for(preset)
    return WarmupGrid(
        experiment=experiment.name,
        preset=preset,
        out_dir=Path(out_dir),
        base_batch_size=base.batch_size,
        scale=experiment.claims[0].scale_factor,
        base_warmup_epochs=base.warmup_epochs,
        epochs=float(epochs),
        lrs=tuple(float(lr) for lr in lrs),
        multipliers=tuple(float(m) for m in multipliers),
        seeds=seeds,
        base_seeds=base_seeds,
    )


def floats(text: str, what: str) -> tuple[float, ...]:
    """A command-line option's comma-separated numbers; ValueError naming the option (``what``)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise ValueError(f"{what}: no value given")
    return values


def recorded_seconds(results: Path, experiment: str, epochs: float) -> dict[int, list[float]]:
    """Wall seconds of the ok run records under ``results`` of ``experiment`` at ``epochs``
    epochs, per batch size: what --plan's estimate is measured from (records name their
    hardware and date; the estimate says which records it used)."""
    import json

    seconds: dict[int, list[float]] = {}
    for path in sorted(Path(results).glob(f"{experiment}/**/runs/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if (
                record["experiment"] == experiment
                and record["status"] == "ok"
                and record["recipe"]["epochs"] == epochs
                and isinstance(record.get("wall_seconds"), (int, float))
            ):
                seconds.setdefault(record["batch_size"], []).append(record["wall_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a record this estimate can use; the report validates records
    return seconds
