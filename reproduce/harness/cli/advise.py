"""reproduce/advise.py: which batch is worth it, from a short run at the base batch (issue 15).

Trains the experiment's base recipe at its base batch for a short budget (``--epochs``, default
1) with a micro-batch below the batch, so that every step holds gradients at two sizes and the
trainer records the gradient noise scale B_simple (``noise_probe.py``); then prints what
``python -m date advise --record`` prints for that record: the critical batch estimate B_crit ~
B_simple (McCandlish et al. 2018, arXiv 1812.06162), the suggested batch and the DATE recipe
there, scaled from the full base recipe (not the shortened one). Writes ``advice.md`` and
``advice.json`` beside the run record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import date
from date.advise import noise_from_record
from date.noise import DEFAULT_DECAY
from reproduce.datasets.integrity import DataError

from ..core.io import atomic_write_text
from ..core.records import RecordError, record_name
from ..run.checkpoint import Preempted
from ..run.experiment import PRESET_NAMES
from ..run.unfinished import TrainedWorkKept, report_stop
from ..sweep.running import SweepError, run_sweep
from .run import USAGE_ERROR, UsageError, build_spec, check_data, help_epilog

#: The short run's micro-batch, as a fraction of the base batch: on a linear-regression problem
#: with known noise (tests/test_noise.py), the spread of the estimate fell from 10% to 8% to 7% of
#: the truth going from 1/2 to 1/4 to 1/8 of the batch; 1/4 keeps most of the gain while the
#: micro-batches stay large enough to run efficiently.
MICRO_BATCH_FRACTION = 4
DEFAULT_EPOCHS = 1.0
DEFAULT_PRESET = "full"


def default_micro_batch(base_batch: int) -> int:
    """The largest divisor of the base batch that is at most base / MICRO_BATCH_FRACTION."""
    limit = max(1, base_batch // MICRO_BATCH_FRACTION)
    return max(d for d in range(1, limit + 1) if base_batch % d == 0)


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


def main_advise(argv: Sequence[str] | None = None) -> int:
    """Train the short run (or reuse its record), then print and write the advice."""
    argv = list(sys.argv[1:] if argv is None else argv)
    arguments = build_parser().parse_args(argv)
    try:
        spec, base = _short_run_spec(arguments, argv)
        method = date.canonical_method(arguments.method)
    except (UsageError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    log = (lambda message: None) if arguments.quiet else print
    try:
        check_data(spec)
        run_sweep(spec, log=log)
        path = spec.out_dir / "runs" / record_name("none", base.batch_size, 0)
        reading = noise_from_record(path, DEFAULT_DECAY)
        advice = date.advise(base, reading["noise_scale"], reading["dataset_size"], method)
    except (UsageError, SweepError, RecordError, DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except Preempted as stop:
        print(f"{stop}; rerun the same command to continue", file=sys.stderr)
        return stop.exit_code
    except (TrainedWorkKept, OSError) as stop:  # every trained run is on disk; say where
        return report_stop(stop)
    text = (
        f"# {spec.experiment.name}: which batch is worth it\n\n"
        f"Generated by `python reproduce/advise.py {' '.join(argv)}` from the record "
        f"`runs/{path.name}`: the base recipe at batch {base.batch_size} trained for "
        f"{spec.base_recipe.epochs:g} epoch(s) with micro-batch {spec.run.micro_batch_size}. "
        f"B_simple {reading['noise_scale']:.4g} at its step {reading['step']} of "
        f"{reading['steps']} (EMA, decay {DEFAULT_DECAY:g}); "
        f"{_fmt(reading['pooled_noise_scale'])} pooled over its {reading['measured_steps']} "
        "measured steps.\n\n" + date.format_advice(advice) + "\n"
    )
    atomic_write_text(spec.out_dir / "advice.md", text)
    measured = {key: value for key, value in reading.items() if key != "base_recipe"}
    advice_json = {**dataclasses.asdict(advice), "measured": measured, "record": path.name}
    atomic_write_text(spec.out_dir / "advice.json", json.dumps(advice_json, indent=2) + "\n")
    print(text, end="")
    return 0


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def short_budget(base: date.Recipe, epochs: float) -> dict[str, object]:
    """Recipe overrides that cut ``base``'s budget to ``epochs``: a decay start or milestone
    beyond the cut is dropped (that part of the schedule is never reached), so the short run
    follows the full schedule where it does not depend on the budget (warmup, constant and
    step-wise phases); a poly or cosine decay runs over the shorter budget."""
    overrides: dict[str, object] = {"epochs": epochs}
    if base.decay_start_epoch > epochs:
        overrides["decay_start_epoch"] = epochs
    if any(milestone > epochs for milestone in base.milestones):
        overrides["milestones"] = tuple(m for m in base.milestones if m <= epochs)
    return overrides


def _short_run_spec(arguments: argparse.Namespace, argv: Sequence[str]) -> tuple:
    """The sweep spec of the short run (method none, base batch, one seed) and the full base
    recipe the advice scales; UsageError naming a bad option."""
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
    micro = (
        default_micro_batch(base.batch_size)
        if arguments.micro_batch is None
        else arguments.micro_batch
    )
    if not 0 < micro < base.batch_size:
        raise UsageError(
            f"--micro-batch {micro}: must be between 1 and {base.batch_size - 1}, below the "
            f"base batch {base.batch_size}, so that each step has gradients at two sizes"
        )
    if base.warmup_epochs > arguments.epochs:
        raise UsageError(
            f"--epochs {arguments.epochs:g} is shorter than the base recipe's warmup "
            f"({base.warmup_epochs:g} epochs): use --epochs {math.ceil(base.warmup_epochs)} or more"
        )
    # The folder's preset plan is this one run, so its report does not list the preset's other
    # runs as missing (nor try to scale the shortened budget to them).
    preset = dataclasses.replace(
        spec.experiment.presets[spec.preset],
        methods=("none",),
        batch_sizes=(base.batch_size,),
        seeds=1,
        base_seeds=1,
    )
    experiment = dataclasses.replace(
        spec.experiment, presets={**spec.experiment.presets, spec.preset: preset}
    )
    spec = dataclasses.replace(
        spec,
        experiment=experiment,
        batch_sizes=(base.batch_size,),
        base_seeds=1,
        recipe_overrides={**spec.recipe_overrides, **short_budget(base, arguments.epochs)},
        run=dataclasses.replace(spec.run, micro_batch_size=micro, measure_noise=True),
        out_dir=arguments.out or Path("runs") / spec.experiment.name / "advise",
        command=("reproduce/advise.py", *argv),
    )
    return spec, base
