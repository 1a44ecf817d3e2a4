"""reproduce/run.py: train an experiment's batch-size sweep, or print its plan (``--plan``).

The arguments are parsed and checked in ``arguments.py`` before anything is written. Then the
runs go one after another in this process (``sweep/running.py``), as one shard of the plan
(``--shard``), as jobs on an engine (``--launcher``, ``sweep/launch.py``) or, for a budget
preset, budget by budget (``sweep/budgets.py``); each writes its reports when it ends
(``reports.REPORTS``), and the job ends with a few lines of what was learned. Misuse exits with
code 2; a stop after training says where the trained runs are and how to finish them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from reproduce.datasets.integrity import DataError

from ..core.records import RecordError
from ..run.checkpoint import Preempted
from ..run.unfinished import TrainedWorkKept, report_stop
from ..sweep.budgets import budget_spec, budgets_of, run_budget_sweep
from ..sweep.estimate import plan_estimate
from ..sweep.launch import LaunchError, LaunchSettings, check_not_under_torchrun, launch_sweep
from ..sweep.planning import CountedExamples, plan_train_data, resolved_plan_table
from ..sweep.running import run_sweep, sweep_complete
from ..sweep.spec import SweepError, SweepSpec
from .arguments import (
    INTERRUPTED,
    USAGE_ERROR,
    UsageError,
    build_parser,
    build_spec,
    check_data,
    help_epilog,
    parse_launch,
    parse_shard,
)
from .reports import REPORTS, end_of_job_lines


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.epilog = help_epilog()
    arguments = parser.parse_args(argv)
    try:
        spec = build_spec(arguments, argv)
        shard = parse_shard(arguments.shard)
        launch = parse_launch(arguments, spec)
        preset = spec.experiment.presets[spec.preset]
        if shard is not None and preset.budgets and preset.tune_budgets:
            raise UsageError(
                f"--shard with the {spec.preset!r} preset: each budget's sweep needs that "
                "budget's tuning first, which shards cannot wait for; use --launcher (ray, "
                "slurm or local), which runs the tuning runs, then the sweep runs"
            )
        if shard is not None and preset.budgets:
            raise UsageError(
                f"--shard with the {spec.preset!r} preset, which runs budget after budget: run "
                "one budget per machine with --set epochs=E, or use --launcher (ray, slurm or "
                "local) to spread every run"
            )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if arguments.plan:
        return print_plan(spec, arguments.estimate)
    try:
        check_data(spec)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    log = (lambda message: None) if arguments.quiet else print
    code = run(spec, launch, shard, log)
    if code != 0:
        return code
    if not arguments.quiet and (shard is None or sweep_complete(spec)):
        print()
        print("\n".join(end_of_job_lines(spec)))
    return 0


def print_plan(spec: SweepSpec, estimate: bool) -> int:
    """--plan: the resolved recipe of every run (of every budget, for a budget preset), and with
    --estimate the training time from a few timed steps; trains nothing. The exit code."""
    train = plan_train_data(spec)
    specs = [spec]
    if spec.experiment.presets[spec.preset].budgets:
        try:
            specs = [budget_spec(spec, epochs, {}) for epochs in budgets_of(spec)]
        except SweepError as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_ERROR
    for planned in specs:
        if planned is not spec:
            tuned = (
                "the lr shown is the base recipe's: the sweep tunes it at the base batch first, "
                f"over {dict(spec.experiment.tuning_grid)}"
                if spec.experiment.presets[spec.preset].tune_budgets
                else "the preset's base recipe, not tuned"
            )
            print(
                f"\nBudget E = {planned.base_recipe.epochs:g} epochs (the schedule stretched "
                f"to it; {tuned}):\n"
            )
        print(resolved_plan_table(planned, train))
    source = "declared" if isinstance(train, CountedExamples) else "counted in the data"
    print(f"\nTraining examples per epoch: {train.steps_per_epoch(1):,.0f} ({source}).")
    if not estimate:
        print("Add --estimate to time a few training steps and estimate the training time.")
        return 0
    print()
    try:
        for planned in specs:
            print(plan_estimate(planned, train))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def run(
    spec: SweepSpec,
    launch: LaunchSettings | None,
    shard: tuple[int, int] | None,
    log: Callable[[str], None],
) -> int:
    """Train the sweep as the arguments asked; the exit code (0 when it finished)."""
    try:
        if launch is not None:
            check_not_under_torchrun()
            failed = launch_sweep(spec, launch, log=log, reports=REPORTS).failed
            if failed:
                print(f"error: {len(failed)} runs failed:", file=sys.stderr)
                for name, reason in failed.items():
                    print(f"  {name}: {reason}", file=sys.stderr)
                print("rerun the same command to retry them", file=sys.stderr)
                return 1
        elif spec.experiment.presets[spec.preset].budgets:
            run_budget_sweep(spec, log=log, reports=REPORTS)
        else:
            run_sweep(spec, log=log, shard=shard, reports=REPORTS)
    except (SweepError, DataError, RecordError, LaunchError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (TrainedWorkKept, OSError) as stop:  # every trained run is on disk; say where
        return report_stop(stop)
    except Preempted as stop:
        print(f"{stop}; rerun the same command with --resume to continue", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        if launch is not None:
            print(
                "interrupted; finished runs are recorded (SLURM and local jobs already started "
                "go on); rerun the same command to continue: it waits for runs still in progress",
                file=sys.stderr,
            )
            return INTERRUPTED
        print(
            "interrupted before a checkpoint could be written; finished runs are recorded, "
            "rerun the same command (with --resume) to continue",
            file=sys.stderr,
        )
        return INTERRUPTED
    return 0
