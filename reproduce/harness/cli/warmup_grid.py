"""reproduce/warmup_grid.py: plan (--plan) or train the warmup grid (``sweep/warmup_grid.py``),
each cell an ordinary run.py sweep run one after another with --resume, then write the grid's
report with report.py."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from tabulate import tabulate

from ..run.registry import experiments
from ..sweep.planning import plan_runs
from ..sweep.running import recorded
from ..sweep.warmup_grid import (
    DEFAULT_BASE_SEEDS,
    DEFAULT_EPOCHS,
    DEFAULT_MULTIPLIERS,
    DEFAULT_SEEDS,
    GRID_FOLDER,
    GRID_METHOD,
    floats,
    grid_for,
    recorded_seconds,
)
from .arguments import USAGE_ERROR, UsageError, build_parser, build_spec
from .report import main as main_report
from .run import main as run_main


def main(argv: list[str] | None = None) -> int:
    """reproduce/warmup_grid.py: plan (--plan) or train the warmup grid, one run at a time,
    resumably, then write its report."""
    parser = argparse.ArgumentParser(
        prog="reproduce/warmup_grid.py",
        description="Train the claim's batch with the sqrt lr and warmups m x w0 between sqrt's "
        "(m = 1) and DATE's (m = k), for each base lr of the tuning grid, one run after another "
        "(rerun the same command to resume); then write OUT/warmup_grid.md.",
    )
    parser.add_argument("experiment", help="experiment name, e.g. mnist_lstm")
    parser.add_argument("--epochs", type=float, default=DEFAULT_EPOCHS, help="epoch budget E")
    parser.add_argument("--lrs", help="comma-separated base lrs (default: the tuning grid's)")
    parser.add_argument(
        "--multipliers",
        default=",".join(f"{m:g}" for m in DEFAULT_MULTIPLIERS),
        help="comma-separated warmup multipliers m of w0 (default: %(default)s)",
    )
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per scaled cell")
    parser.add_argument(
        "--base-seeds", type=int, default=DEFAULT_BASE_SEEDS, help="seeds per base-batch cell"
    )
    parser.add_argument("--preset", default="full", help="preset of the model and data")
    parser.add_argument("--out", type=Path, help="grid root (default: results/EXP/warmup_grid)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root")
    parser.add_argument(
        "--plan", action="store_true", help="print the cells, commands and cost; train nothing"
    )
    arguments = parser.parse_args(argv)
    registered = experiments()
    if arguments.experiment not in registered:
        print(
            f"error: unknown experiment {arguments.experiment!r}; one of {', '.join(registered)}",
            file=sys.stderr,
        )
        return USAGE_ERROR
    experiment = registered[arguments.experiment]
    out = arguments.out or arguments.results / experiment.name / GRID_FOLDER
    try:
        if arguments.preset not in experiment.presets:
            raise ValueError(
                f"--preset {arguments.preset!r}: one of {', '.join(experiment.presets)}"
            )
        grid = grid_for(
            experiment,
            out,
            preset=arguments.preset,
            epochs=arguments.epochs,
            lrs=floats(arguments.lrs, "--lrs") if arguments.lrs else None,
            multipliers=floats(arguments.multipliers, "--multipliers"),
            seeds=arguments.seeds,
            base_seeds=arguments.base_seeds,
        )
        # Every cell resolved by the sweep's own planner, as run.py will train it.
        resolved = []
        for cell in grid.cells():
            cell_argv = cell.run_arguments(grid.experiment, grid.preset, grid.epochs)
            spec = build_spec(build_parser().parse_args(cell_argv), cell_argv)
            runs = plan_runs(spec)
            done = sum(recorded(spec, run) is not None for run in runs)
            resolved.append((cell, cell_argv, runs, done))
    except (ValueError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR

    if arguments.plan:
        rows = []
        for cell, _, runs, done in resolved:
            recipe = runs[0].recipe
            rows.append(
                [
                    f"{cell.lr:g}",
                    "base" if cell.multiplier is None else f"x{cell.multiplier:g}",
                    cell.batch_size,
                    f"{recipe.lr:.4g}",
                    f"{recipe.warmup_epochs:g}",
                    f"{done}/{len(runs)}",
                    cell.folder.as_posix(),
                ]
            )
        print(
            f"{grid.experiment} warmup grid: E = {grid.epochs:g} epochs, base batch "
            f"{grid.base_batch_size}, scaled batch {grid.batch_size} (x{grid.scale}), w0 = "
            f"{grid.base_warmup_epochs:g} epochs (DATE's warmup at x{grid.scale}: "
            f"{grid.base_warmup_epochs * grid.scale:g}), method {GRID_METHOD}.\n"
        )
        headers = ["base lr", "warmup", "batch", "peak lr", "warmup ep", "recorded", "folder"]
        print(tabulate(rows, headers=headers, tablefmt="github"))
        counts = grid.run_count()
        total = sum(counts.values())
        remaining = total - sum(done for *_, done in resolved)
        print(
            f"\nRuns: {total} ({', '.join(f'{n} at batch {b}' for b, n in counts.items())}); "
            f"{remaining} not recorded yet."
        )
        seconds = recorded_seconds(arguments.results, grid.experiment, grid.epochs)
        per_batch = {b: statistics.median(seconds[b]) for b in counts if seconds.get(b)}
        if len(per_batch) == len(counts):
            left = {b: 0 for b in counts}
            for cell, _, runs, done in resolved:
                left[cell.batch_size] += len(runs) - done
            hours = sum(per_batch[b] * n for b, n in left.items()) / 3600
            basis = "; ".join(
                f"batch {b}: median {per_batch[b]:.0f} s over {len(seconds[b])} records"
                for b in counts
            )
            print(
                f"Estimated time for the runs not recorded yet, one after another: {hours:.1f} h "
                f"(from the wall_seconds of ok records at E = {grid.epochs:g} under "
                f"{arguments.results}: {basis}; measured on the hardware those records name)."
            )
        else:
            print(
                f"No recorded ok run at E = {grid.epochs:g} for every batch under "
                f"{arguments.results} to estimate from; `python reproduce/run.py ... --plan "
                "--estimate` on one cell times a few steps on this machine."
            )
        print("\nCommands (each one cell; this script runs them in order with --resume):")
        for _, cell_argv, _, _ in resolved:
            print("  OMP_NUM_THREADS=1 python reproduce/run.py " + " ".join(cell_argv))
        return 0

    for cell, cell_argv, _, _ in resolved:
        code = run_main([*cell_argv, "--resume"])
        if code != 0:
            print(
                f"error: the cell {cell.folder} stopped with exit code {code}; its finished runs "
                "are recorded and its checkpoints kept: rerun the same command to resume",
                file=sys.stderr,
            )
            return code
    return main_report([out.as_posix()])
