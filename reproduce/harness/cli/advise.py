"""reproduce/advise.py: which batch is worth it, from a short run at the base batch.

The arguments are parsed here and checked with run.py's (``arguments.py``); the short run is an
ordinary one-run sweep (``sweep/running.py``), and its spec and the advice written from its record
are ``sweep/advice.py``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import date
from reproduce.datasets.integrity import DataError

from ..core.records import RecordError
from ..run.checkpoint import Preempted
from ..run.experiment import PRESET_NAMES
from ..run.unfinished import TrainedWorkKept, report_stop
from ..sweep.advice import (
    DEFAULT_EPOCHS,
    MICRO_BATCH_FRACTION,
    read_advice,
    short_run_spec,
    write_advice,
)
from ..sweep.running import run_sweep
from ..sweep.spec import SweepError, SweepSpec
from .arguments import USAGE_ERROR, UsageError, build_spec, check_data, help_epilog
from .reports import REPORTS

DEFAULT_PRESET = "full"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reproduce/advise.py",
        description=(
            "Which batch is worth it: train the base recipe at the base batch for a short budget "
            "with the gradient noise scale measured, then print the critical batch estimate "
            "(McCandlish et al. 2018), the suggested batch and the DATE recipe there."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", help="experiment name (see the list below)")
    parser.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default=DEFAULT_PRESET,
        help=f"the model, data and base recipe to advise for (default {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=DEFAULT_EPOCHS,
        help=f"length of the short run, in epochs (default {DEFAULT_EPOCHS:g})",
    )
    parser.add_argument(
        "--micro-batch",
        type=int,
        help=f"micro-batch of the short run (default: the largest divisor of the base batch "
        f"up to 1/{MICRO_BATCH_FRACTION} of it)",
    )
    parser.add_argument(
        "--method", default="date", help="scaling method of the printed recipe (default date)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or tpu")
    parser.add_argument("--data-dir", type=Path, help="read the data from this folder")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/EXPERIMENT/advise)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field (lr=0.2), model.KEY, data.KEY or run.KEY",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the advice")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the short run from its checkpoint (one whose evaluation failed)",
    )
    # run.py's epilog without its "default preset" line: advise.py's default is its own
    parser.epilog = "\n".join(
        line for line in help_epilog().splitlines() if not line.startswith("default preset:")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Train the short run (or reuse its record), then print and write the advice."""
    argv = list(sys.argv[1:] if argv is None else argv)
    arguments = build_parser().parse_args(argv)
    try:
        spec, base = parse_spec(arguments, argv)
        method = date.canonical_method(arguments.method)
    except (UsageError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    log = (lambda message: None) if arguments.quiet else print
    try:
        check_data(spec)
        run_sweep(spec, log=log, reports=REPORTS)
        path, reading, advice = read_advice(spec, base, method)
    except (UsageError, SweepError, RecordError, DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except Preempted as stop:
        print(f"{stop}; rerun the same command to continue", file=sys.stderr)
        return stop.exit_code
    except (TrainedWorkKept, OSError) as stop:  # every trained run is on disk; say where
        return report_stop(stop)
    text = write_advice(spec, base, path, reading, advice, argv)
    print(text, end="")
    return 0


def parse_spec(arguments: argparse.Namespace, argv: Sequence[str]) -> tuple[SweepSpec, date.Recipe]:
    """The sweep spec of the short run (method none, base batch, one seed) and the full base
    recipe the advice scales; UsageError or ValueError naming a bad option."""
    if not (math.isfinite(arguments.epochs) and arguments.epochs > 0):
        raise UsageError(f"--epochs {arguments.epochs}: must be a positive number of epochs")
    namespace = argparse.Namespace(
        experiment=arguments.experiment,
        preset=arguments.preset,
        set=arguments.set,
        seeds=1,
        device=arguments.device,
        data_dir=arguments.data_dir,
        methods="none",
        batch_sizes=None,
        out=arguments.out,
        quiet=arguments.quiet,
        resume=arguments.resume,
        estimate=False,
    )
    spec = build_spec(namespace, argv)
    base = spec.base_recipe
    short = short_run_spec(spec, arguments.epochs, arguments.micro_batch, arguments.out)
    return dataclasses.replace(short, command=("reproduce/advise.py", *argv)), base
