"""reproduce/tune.py: tune an experiment's base recipe at its base batch over the grid it
declares (``sweep/tuning.py``), on the validation split, and print the tuning's summary; for a
budget preset, at every budget of its grid (``sweep/budgets.py``). It takes run.py's arguments
(``arguments.py``) and trains in this process."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from reproduce.datasets.integrity import DataError

from ..core.records import RecordError
from ..run.unfinished import TrainedWorkKept, report_stop
from ..sweep.budgets import budget_folder, budgets_of, tune_budget, tuning_grid
from ..sweep.spec import SweepError
from ..sweep.tuning import run_tuning
from .arguments import USAGE_ERROR, USER_RUNS, UsageError, build_parser, build_spec, check_data
from .reports import REPORTS


def main(argv: Sequence[str] | None = None) -> int:
    """reproduce/tune.py: train the experiment's tuning grid at its base batch."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.prog = "reproduce/tune.py"
    parser.description = (
        "Tune an experiment's base recipe at its base batch over the grid it declares, on the "
        "validation split (never the test set)."
    )
    arguments = parser.parse_args(argv)
    try:
        if arguments.launcher or arguments.shard or arguments.max_parallel is not None:
            raise UsageError(
                "tune.py trains in this process (--launcher, --shard and --max-parallel are "
                "run.py's); to spread a budget sweep's tuning over jobs, use reproduce/run.py "
                "EXPERIMENT --preset budget --launcher ..."
            )
        spec = dataclasses.replace(
            build_spec(arguments, argv), command=("reproduce/tune.py", *argv)
        )
        if not spec.experiment.tuning_grid:
            raise UsageError(f"experiment {spec.experiment.name!r} declares no tuning grid")
        if arguments.out is None and not spec.experiment.presets[spec.preset].budgets:
            spec = dataclasses.replace(spec, out_dir=USER_RUNS / spec.experiment.name / "tuning")
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    log = (lambda message: None) if arguments.quiet else print
    if spec.experiment.presets[spec.preset].budgets:  # tune every budget of the grid
        try:
            for epochs in budgets_of(spec):
                tune_budget(spec, epochs, log=log, reports=REPORTS)
                tuning = budget_folder(spec.out_dir, epochs) / "tuning" / "tuning.md"
                print(tuning.read_text(encoding="utf-8"))
        except (SweepError, DataError) as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_ERROR
        except (TrainedWorkKept, OSError) as stop:
            return report_stop(stop)
        return 0
    # `--set KEY=VALUE` on a grid key trains only that point of the axis (to split the grid over
    # processes); a final run without it finds every point recorded and writes the summary.
    grid = tuning_grid(spec)
    try:
        check_data(spec)
        folder = run_tuning(spec, grid, log=log, reports=REPORTS)
    except (UsageError, SweepError, DataError, RecordError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (TrainedWorkKept, OSError) as stop:
        return report_stop(stop)
    print((folder / "tuning.md").read_text(encoding="utf-8"))
    return 0
