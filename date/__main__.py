"""Command line: ``python -m date plan ...`` prints what each scaling method gives per batch size;
``python -m date advise ...`` the batch worth using given a measured gradient noise scale.

Example (ImageNet, base batch 256, 5/16 epoch of warmup, doubling up to 32K)::

    python -m date plan --lr 0.1 --batch-size 256 --warmup-epochs 0.3125 --epochs 90 \\
        --dataset-size 1281167 --to 32768 --methods date,linear

or, instead of --to, the setup: ``--per-device-batch 32 --accumulation-steps 4 --world-size 64``
(the global batch 32 x 4 x 64 = 8192, shown beside the base batch).
    python -m date advise --record results/mnist_lstm/advise/runs/none_b128_s0.json

Bad input prints one ``error: ...`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from date.advise import advise, format_advice, noise_from_record
from date.batch import global_batch_size
from date.noise import DEFAULT_DECAY
from date.plan import format_plan, plan
from date.recipe import DECAYS, OPTIMIZERS, Recipe, check_batch_size
from date.scaling import ALIASES, METHODS, canonical_method

USAGE_ERROR = 2  # exit status for bad input, as argparse uses


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one ``error: ...`` line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"error: {message} (see '{self.prog} --help')\n")


def _comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _methods(text: str) -> list[str]:
    try:
        return [canonical_method(name) for name in _comma_list(text)]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _positive_integer(text: str) -> int:
    try:
        return check_batch_size(int(text), name="value")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from error


def _batch_sizes(text: str) -> list[int]:
    return [_positive_integer(item) for item in _comma_list(text)]


def _epochs_list(text: str) -> list[float]:
    try:
        return [float(item) for item in _comma_list(text)]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs, got {text!r}"
        ) from error


def doubling_ladder(base: int, target: int) -> list[int]:
    """Batch sizes from `base` to `target` by factors of 2, always ending at `target`.

    Upwards: base, 2 base, 4 base, ... below target, then target (which need not be base * 2^n).
    Downwards: halvings of base while they stay integers above target, then target.
    """
    base, target = check_batch_size(base), check_batch_size(target, name="--to")
    ladder = [base]
    if target > base:
        while ladder[-1] * 2 < target:
            ladder.append(ladder[-1] * 2)
    elif target < base:
        while ladder[-1] % 2 == 0 and ladder[-1] // 2 > target:
            ladder.append(ladder[-1] // 2)
    if ladder[-1] != target:
        ladder.append(target)
    return ladder


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m date",
        description="DATE / LEGW learning-rate scaling for large batches (You et al., SC'19).",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    aliases = ", ".join(f"{alias}={target}" for alias, target in ALIASES.items())
    plan_parser = commands.add_parser(
        "plan",
        help="tabulate peak lr, warmup and steps per batch size and scaling method",
        description="Scale a recipe tuned at --batch-size to larger (or smaller) batches.",
    )
    _add_recipe_arguments(plan_parser, required=True)

    target = plan_parser.add_argument_group("batch sizes and methods")
    target.add_argument(
        "--dataset-size", type=_positive_integer, required=True, help="training examples (N)"
    )
    sizes = target.add_mutually_exclusive_group(required=True)
    sizes.add_argument(
        "--to", type=_positive_integer, help="doubling ladder from --batch-size to this batch"
    )
    sizes.add_argument("--batch-sizes", type=_batch_sizes, help="e.g. 256,1024,8192")
    sizes.add_argument(
        "--per-device-batch",
        type=_positive_integer,
        help="the setup's batch per device (per process); the global batch is this x "
        "--accumulation-steps x --world-size",
    )
    target.add_argument(
        "--accumulation-steps",
        type=_positive_integer,
        help="micro-batches accumulated per optimizer step (with --per-device-batch; default 1)",
    )
    target.add_argument(
        "--world-size",
        type=_positive_integer,
        help="data-parallel processes (with --per-device-batch; default 1)",
    )
    target.add_argument(
        "--methods",
        type=_methods,
        default=list(METHODS),
        help=f"comma-separated, from {','.join(METHODS)} (alias {aliases}); default all",
    )
    target.add_argument("--json", action="store_true", help="print rows as JSON instead")
    _add_advise_parser(commands)
    return parser


def _add_recipe_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    recipe = parser.add_argument_group("base recipe (tuned at --batch-size)")
    recipe.add_argument("--lr", type=float, required=required, help="peak learning rate")
    recipe.add_argument(
        "--batch-size", type=_positive_integer, required=required, help="base batch"
    )
    recipe.add_argument("--epochs", type=float, required=required, help="epoch budget")
    recipe.add_argument("--warmup-epochs", type=float, default=0.0, help="warmup length (epochs)")
    recipe.add_argument("--warmup-start-factor", type=float, default=0.0)
    recipe.add_argument("--decay", choices=DECAYS, default="constant")
    recipe.add_argument("--poly-power", type=float, default=2.0)
    recipe.add_argument("--final-lr-factor", type=float, default=0.0)
    recipe.add_argument("--decay-rate", type=float, default=0.5)
    recipe.add_argument("--decay-start-epoch", type=float, default=0.0)
    recipe.add_argument("--milestones", type=_epochs_list, default=[], help="e.g. 30,60,80")
    recipe.add_argument("--milestone-factor", type=float, default=0.1)
    recipe.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    recipe.add_argument("--momentum", type=float, default=0.0)
    recipe.add_argument("--weight-decay", type=float, default=0.0)


def _add_advise_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "advise",
        help="the critical batch from a measured gradient noise scale, and the recipe there",
        description=(
            "From the gradient noise scale B_simple measured at the base batch (a value, or a run "
            "record of the DATE reproduction suite whose curves hold it), estimate the critical "
            "batch B_crit ~ B_simple (McCandlish et al. 2018, arXiv 1812.06162), suggest the "
            "largest base x 2^n not above it, and print the scaled recipe there."
        ),
    )
    source = parser.add_argument_group("the noise scale (one of)").add_mutually_exclusive_group(
        required=True
    )
    source.add_argument(
        "--noise-scale", type=float, help="B_simple in examples (needs the base recipe flags)"
    )
    source.add_argument(
        "--record",
        type=Path,
        help="a run record (JSON) with noise curves: its base recipe and dataset size are used",
    )
    _add_recipe_arguments(parser, required=False)
    parser.add_argument(
        "--dataset-size", type=_positive_integer, help="training examples (N); with --noise-scale"
    )
    parser.add_argument(
        "--method",
        type=lambda text: _methods(text)[0],
        default="date",
        help="the scaling method of the printed recipe (default date)",
    )
    parser.add_argument(
        "--smoothing",
        type=float,
        default=DEFAULT_DECAY,
        help=f"EMA decay over a record's per-step estimates (default {DEFAULT_DECAY})",
    )
    parser.add_argument("--json", action="store_true", help="print the advice as JSON instead")


def _recipe(arguments: argparse.Namespace) -> Recipe:
    return Recipe(
        batch_size=arguments.batch_size,
        lr=arguments.lr,
        epochs=arguments.epochs,
        warmup_epochs=arguments.warmup_epochs,
        warmup_start_factor=arguments.warmup_start_factor,
        decay=arguments.decay,
        poly_power=arguments.poly_power,
        final_lr_factor=arguments.final_lr_factor,
        decay_rate=arguments.decay_rate,
        decay_start_epoch=arguments.decay_start_epoch,
        milestones=tuple(arguments.milestones),
        milestone_factor=arguments.milestone_factor,
        optimizer=arguments.optimizer,
        momentum=arguments.momentum,
        weight_decay=arguments.weight_decay,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0, or 2 for bad input)."""
    arguments = build_parser().parse_args(argv)
    if arguments.command == "advise":
        return _advise(arguments)
    setup_line = None
    try:
        recipe = _recipe(arguments)
        if arguments.per_device_batch is None:
            given = [
                flag
                for flag in ("--accumulation-steps", "--world-size")
                if getattr(arguments, flag[2:].replace("-", "_")) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only with --per-device-batch (the global batch is "
                    "per-device batch x accumulation steps x world size)"
                )
        if arguments.to is not None:
            batch_sizes = doubling_ladder(recipe.batch_size, arguments.to)
            if arguments.to < recipe.batch_size:
                print(
                    f"note: --to {arguments.to} is below --batch-size {recipe.batch_size}: the "
                    "ladder halves the batch (k < 1), scaling the tuned recipe down; the paper's "
                    "rules are stated for scaling up",
                    file=sys.stderr,
                )
        elif arguments.batch_sizes is not None:
            batch_sizes = arguments.batch_sizes
        else:
            accumulation, world = arguments.accumulation_steps or 1, arguments.world_size or 1
            batch = global_batch_size(arguments.per_device_batch, accumulation, world)
            batch_sizes = sorted({recipe.batch_size, batch})
            setup_line = (
                f"Global batch {batch} = {arguments.per_device_batch} per device x {accumulation} "
                f"accumulation steps x {world} processes: k = {batch / recipe.batch_size:g} over "
                f"the base batch {recipe.batch_size}."
            )
        rows = plan(recipe, batch_sizes, arguments.methods, dataset_size=arguments.dataset_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if arguments.json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
    else:
        if setup_line is not None:
            print(setup_line + "\n")
        print(format_plan(rows))
    return 0


#: The recipe flags of `advise`, which --record replaces (argparse dest -> flag).
_RECIPE_FLAGS = {
    "lr": "--lr",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "dataset_size": "--dataset-size",
}


def _advise(arguments: argparse.Namespace) -> int:
    try:
        if not (math.isfinite(arguments.smoothing) and 0 <= arguments.smoothing < 1):
            raise ValueError(f"--smoothing {arguments.smoothing:g}: must be in [0, 1)")
        if arguments.record is not None:
            given = [flag for dest, flag in _RECIPE_FLAGS.items() if getattr(arguments, dest)]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: --record gives the base recipe and dataset size; drop "
                    "them, or pass --noise-scale instead of --record"
                )
            reading = noise_from_record(arguments.record, arguments.smoothing)
            recipe, dataset_size = reading["base_recipe"], reading["dataset_size"]
            noise_scale = reading["noise_scale"]
        else:
            missing = [flag for dest, flag in _RECIPE_FLAGS.items() if not getattr(arguments, dest)]
            if missing:
                raise ValueError(f"--noise-scale needs the base recipe: {', '.join(missing)}")
            recipe, dataset_size = _recipe(arguments), arguments.dataset_size
            noise_scale, reading = arguments.noise_scale, None
        advice = advise(recipe, noise_scale, dataset_size, arguments.method)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if arguments.json:
        result = dataclasses.asdict(advice)
        if reading is not None:
            result["measured"] = {k: v for k, v in reading.items() if k != "base_recipe"}
        print(json.dumps(result, indent=2, default=str))
        return 0
    if reading is not None:
        pooled = reading["pooled_noise_scale"]
        print(
            f"Measured in {arguments.record} ({reading['experiment']}, {reading['method']} at "
            f"batch {reading['batch_size']}, seed {reading['seed']}): B_simple {noise_scale:.4g} "
            "at step "
            f"{reading['step']} of {reading['steps']} (EMA, decay {arguments.smoothing:g}); "
            f"{pooled:.4g} pooled over its {reading['measured_steps']} measured steps.\n"
            if pooled is not None
            else f"Measured in {arguments.record}: B_simple {noise_scale:.4g}.\n"
        )
    print(format_advice(advice))
    return 0


if __name__ == "__main__":
    sys.exit(main())
