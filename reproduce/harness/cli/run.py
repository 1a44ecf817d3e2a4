"""The command line of reproduce/run.py: small and stable (tests/test_cli.py guards the flag set).

New knobs belong in config, reached with ``--set``: recipe fields by name (``--set lr=0.2``),
``model.KEY``, ``data.KEY`` (``data.source=hub``) and ``run.KEY`` (``run.micro_batch_size=256``).
Misuse exits with code 2 and a message listing the valid choices, before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import date
from date import Recipe
from reproduce.datasets.integrity import DataError

from ..core.records import RecordError
from ..run.checkpoint import Preempted
from ..run.devices import DEVICE_KINDS, check_device
from ..run.experiment import OPTIONAL_PRESET_NAMES, PRESET_NAMES, Experiment
from ..run.registry import experiments, get_experiment
from ..run.trainer import PRECISIONS
from ..run.unfinished import TrainedWorkKept, report_stop
from ..sweep.budgets import run_budget_sweep
from ..sweep.config_check import ConfigError, check_config, check_machine
from ..sweep.launch import LAUNCH_KEYS, LAUNCHERS, LaunchError, LaunchSettings
from ..sweep.running import (
    RunSettings,
    SweepError,
    SweepSpec,
    folder_plan,
    plan_runs,
    resolved_plan_table,
    run_sweep,
)

DEFAULT_PRESET = "quick"
#: Where a user's runs go unless --out says otherwise: runs/EXPERIMENT/PRESET, gitignored, apart
#: from the published records in results/ (so that a fresh clone trains instead of finding every
#: run already recorded, and publishing stays an explicit --out results/...).
USER_RUNS = Path("runs")
PUBLISHED = Path(__file__).resolve().parents[3] / "results"
USAGE_ERROR = 2
INTERRUPTED = 128 + 2  # the shell's code for a process ended by SIGINT (Ctrl-C)


class UsageError(ValueError):
    """Command-line misuse: reported on stderr with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reproduce/run.py",
        description=(
            "Reproduce an experiment of 'Large-Batch Training for LSTM and Beyond' (You et al., "
            "SC'19): a batch-size sweep of scaling methods (baselines vs DATE), run records, "
            "tables, plots and the diff against the paper's numbers."
        ),
    )
    parser.add_argument("experiment", help="experiment name (see --help epilog for the list)")
    parser.add_argument(
        "--methods",
        help="comma-separated scaling methods (default: the preset's); see the list below",
    )
    parser.add_argument(
        "--batch-sizes", help="comma-separated global batch sizes (default: the preset's)"
    )
    parser.add_argument(
        "--preset",
        choices=(*PRESET_NAMES, *OPTIONAL_PRESET_NAMES),
        help=(
            "smoke: seconds, what the tests run; quick (the default, except where an experiment "
            "whose data is not shipped defaults to full): minutes on a CPU, the "
            "trend on a reduced budget; full: the paper's setting, whose records are published; "
            "budget (where an experiment has it): the full sweep repeated at several epoch "
            "budgets, each with its base recipe tuned at the base batch; proxy (gnmt, "
            "imagenet_resnet50): the paper's claim on a small real or rule-based task, with the "
            "real model code and recipe at reduced size; tasks (gnmt): copy and reverse of random "
            "sequences, which only a model that uses its source can pass"
        ),
    )
    parser.add_argument(
        "--seeds",
        type=int,
        help="seeds of every run, the base batch's included (default: the preset's: 1, and "
        "more at the base batch, where the tolerance band is measured); 1 lowers those too",
    )
    parser.add_argument("--device", choices=DEVICE_KINDS, default="cpu")
    parser.add_argument(
        "--data-dir", type=Path, help="read the data from this folder instead of the repo's copy"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default: runs/EXPERIMENT/PRESET, your own runs; the published "
        "records are in results/EXPERIMENT/PRESET, and --out results/... adds to them)",
    )
    parser.add_argument(
        "--plan", action="store_true", help="print the resolved recipes at once; train nothing"
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="time a few training steps on this device and print the estimated training time "
        "(with --plan: per batch size, training nothing; else one line before the sweep trains). "
        "Printed, never recorded",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field (lr=0.2), model.KEY, data.KEY or run.KEY",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue unfinished runs from their checkpoints"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing but errors (the reports are written)"
    )
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        help="run each planned run as its own job: ray (a Ray cluster at RAY_ADDRESS, or a local "
        "instance), slurm (submitit), local (local processes); default: one after another here",
    )
    parser.add_argument(
        "--max-parallel",
        type=int,
        metavar="N",
        help="with --launcher: at most N runs at once (default: what the resources allow; "
        "local: the CPU count / launch.cpus_per_run)",
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="train shard I of N of the plan (0 <= I < N), for job arrays and indexed jobs",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def help_epilog() -> str:
    """The experiments with their presets' batch sizes, and the methods with their aliases."""
    lines = ["experiments (presets: batch sizes):"]
    for name, experiment in experiments().items():
        presets = "; ".join(
            f"{preset}: {', '.join(str(b) for b in experiment.presets[preset].batch_sizes)}"
            + (
                f" at E = {', '.join(f'{e:g}' for e in experiment.presets[preset].budgets)}"
                if experiment.presets[preset].budgets
                else ""
            )
            for preset in (*PRESET_NAMES, *OPTIONAL_PRESET_NAMES)
            if preset in experiment.presets
        )
        lines.append(f"  {name:<18} {experiment.description}")
        lines.append(f"  {'':<18} {presets}")
    aliases = ", ".join(f"{alias} = {method}" for alias, method in date.ALIASES.items())
    lines.append(f"methods: {', '.join(date.METHODS)} (aliases: {aliases})")
    own = [
        f"{n}: {e.default_preset}"
        for n, e in experiments().items()
        if e.default_preset != DEFAULT_PRESET
    ]
    lines.append(f"default preset: {DEFAULT_PRESET}" + (f" ({'; '.join(own)})" if own else ""))
    return "\n".join(lines)


def parse_list(text: str | None, what: str) -> list[str] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"--{what} is empty")
    return items


def parse_batch_sizes(text: str | None) -> tuple[int, ...] | None:
    items = parse_list(text, "batch-sizes")
    if items is None:
        return None
    sizes = []
    for item in items:
        try:
            size = int(item)
        except ValueError:
            raise UsageError(f"--batch-sizes: {item!r} is not an integer") from None
        if size <= 0:
            raise UsageError(f"--batch-sizes: {size} is not a positive batch size")
        sizes.append(size)
    return tuple(dict.fromkeys(sizes))


def parse_methods(text: str | None) -> tuple[str, ...] | None:
    items = parse_list(text, "methods")
    if items is None:
        return None
    valid = (*date.METHODS, *date.ALIASES)
    for item in items:
        if item not in valid:
            raise UsageError(f"unknown method {item!r}; valid choices: {', '.join(valid)}")
    return tuple(dict.fromkeys(date.canonical_method(item) for item in items))


def convert(text: str, annotation: Any, key: str) -> Any:
    """``text`` as a value of the type ``annotation`` (bool, int, float, str, tuple, optional)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if text.lower() == "none":
            return None
        return convert(text, options[0], key)
    if origin is tuple:
        element = typing.get_args(annotation)[0]
        return tuple(convert(part, element, key) for part in text.split(",") if part.strip())
    if annotation is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UsageError(f"--set {key}: {text!r} is not a boolean (true or false)")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise UsageError(f"--set {key}: {text!r} is not {annotation.__name__}") from None
    return text


def infer(text: str, current: Any, key: str) -> Any:
    """``text`` converted to the type of a config value that has no declared type."""
    if current is None:
        raise UsageError(f"--set {key}: cannot infer its type")
    return convert(text, type(current), key)


def unknown_key(key: str, namespace: str, valid: Mapping[str, Any]) -> str:
    return f"--set: unknown key {key!r}; valid: {', '.join(f'{namespace}.{k}' for k in valid)}"


def parse_overrides(
    assignments: Sequence[str], experiment: Experiment, preset: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], RunSettings]:
    """Split ``--set`` assignments into recipe, model, data and run overrides, type-checked."""
    recipe_fields = typing.get_type_hints(Recipe)
    recipe_fields = {f.name: recipe_fields[f.name] for f in dataclasses.fields(Recipe)}
    run_fields = typing.get_type_hints(RunSettings)
    model_defaults = {**experiment.model_defaults, **experiment.presets[preset].model}
    data_defaults = {
        "source": "local",
        **experiment.data_defaults,
        **experiment.presets[preset].data,
    }
    recipe, model, data, run = {}, {}, {}, {}
    for assignment in assignments:
        key, separator, value = assignment.partition("=")
        key = key.strip()
        if not separator or not key:
            raise UsageError(f"--set {assignment!r}: expected KEY=VALUE")
        namespace, _, name = key.rpartition(".")
        if namespace == "":
            if key not in recipe_fields:
                raise UsageError(
                    f"--set: unknown key {key!r}; valid recipe keys: {', '.join(recipe_fields)}; "
                    "or model.KEY, data.KEY, run.KEY, launch.KEY"
                )
            recipe[key] = convert(value, recipe_fields[key], key)
        elif namespace == "model":
            if name not in model_defaults:
                raise UsageError(unknown_key(key, "model", model_defaults))
            model[name] = infer(value, model_defaults[name], key)
        elif namespace == "data":
            if name not in data_defaults:
                raise UsageError(unknown_key(key, "data", data_defaults))
            data[name] = infer(value, data_defaults[name], key)
        elif namespace == "launch":
            continue  # parse_launch
        elif namespace == "run":
            if name not in run_fields:
                raise UsageError(unknown_key(key, "run", run_fields))
            run[name] = convert(value, run_fields[name], key)
        else:
            raise UsageError(
                f"--set: unknown namespace in {key!r}; use a recipe field, model., data., run. or "
                "launch."
            )
    if data.get("source", "local") not in experiment.data_sources:
        valid = ", ".join(experiment.data_sources)
        raise UsageError(f"--set data.source={data['source']!r}: valid choices: {valid}")
    if run.get("precision", "fp32") not in PRECISIONS:
        raise UsageError(f"--set run.precision: valid choices: {', '.join(PRECISIONS)}")
    micro = run.get("micro_batch_size")
    if micro is not None and micro <= 0:
        raise UsageError(f"--set run.micro_batch_size={micro}: must be a positive integer")
    for key in ("evals_per_epoch", "checkpoint_every_epochs"):
        value = run.get(key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"--set run.{key}={value}: must be a positive number (or none)")
    minutes = run.get("checkpoint_every_minutes")
    if minutes is not None and not (math.isfinite(minutes) and minutes >= 0):
        raise UsageError(
            f"--set run.checkpoint_every_minutes={minutes}: must be >= 0 (0 or none: no timed "
            "checkpoints)"
        )
    return recipe, model, data, RunSettings(**run)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as (I, N), 0 <= I < N."""
    if text is None:
        return None
    index, separator, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = None
    if not separator or shard is None or not 0 <= shard[0] < shard[1]:
        raise UsageError(
            f"--shard {text}: expected I/N with 0 <= I < N (e.g. --shard 0/8 to --shard 7/8; "
            "a SLURM array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-7)"
        )
    return shard


def parse_launch(arguments: argparse.Namespace, spec: SweepSpec) -> LaunchSettings | None:
    """The launcher settings (``--launcher``, ``--max-parallel``, ``--set launch.KEY``), or None
    when the runs go one after another in this process; UsageError on misuse."""
    launch_fields = typing.get_type_hints(LaunchSettings)
    values: dict[str, Any] = {}
    for assignment in arguments.set:
        key, _, value = assignment.partition("=")
        namespace, _, name = key.strip().rpartition(".")
        if namespace != "launch":
            continue
        if name not in LAUNCH_KEYS:
            valid = ", ".join(f"launch.{k}" for k in LAUNCH_KEYS)
            raise UsageError(f"--set: unknown key {key.strip()!r}; valid: {valid}")
        values[name] = convert(value, launch_fields[name], key.strip())
    if arguments.launcher is None:
        misuse = [
            flag
            for flag, given in (
                ("--max-parallel", arguments.max_parallel is not None),
                ("--set launch.", bool(values)),
            )
            if given
        ]
        if misuse:
            raise UsageError(f"{' and '.join(misuse)} need --launcher (ray, slurm or local)")
        return None
    if arguments.shard is not None:
        raise UsageError("--shard and --launcher exclude each other: a launcher runs every shard")
    if arguments.max_parallel is not None and arguments.max_parallel <= 0:
        raise UsageError(f"--max-parallel {arguments.max_parallel}: must be a positive integer")
    for key in ("cpus_per_run", "slurm_time_minutes"):
        if key in values and values[key] <= 0:
            raise UsageError(f"--set launch.{key}={values[key]}: must be a positive integer")
    if values.get("max_retries", 0) < 0:
        raise UsageError(f"--set launch.max_retries={values['max_retries']}: must be >= 0")
    if values.get("poll_seconds", 1.0) <= 0:
        raise UsageError(f"--set launch.poll_seconds={values['poll_seconds']}: must be > 0")
    if spec.device == "tpu":
        raise UsageError(
            "--launcher with --device tpu: a TPU VM runs one sweep over its cores (xla/launch.py)"
        )
    max_parallel = arguments.max_parallel
    if max_parallel is None and arguments.launcher == "local":
        max_parallel = max(1, (os.cpu_count() or 1) // values.get("cpus_per_run", 1))
        if spec.device == "cuda":
            import torch

            max_parallel = max(1, torch.cuda.device_count())
    return LaunchSettings(
        launcher=arguments.launcher,
        max_parallel=max_parallel,
        gpus_per_run=1 if spec.device == "cuda" else 0,
        **values,
    )


def check_model_config(spec: SweepSpec) -> None:
    """Build the model on torch's meta device (no memory, no compute), so that a model config
    the model rejects is a usage error now rather than a traceback later."""
    import torch

    try:
        with torch.device("meta"):
            spec.experiment.build_model(spec.model_config)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as error:
        keys = " ".join(f"model.{key}={value}" for key, value in spec.model_overrides.items())
        where = f"--set {keys}" if keys else f"the {spec.preset!r} preset's model config"
        raise UsageError(
            f"{where}: the {spec.experiment.name} model cannot be built with it "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
            f"its defaults are {dict(spec.experiment.model_defaults)}"
        ) from None


def build_spec(arguments: argparse.Namespace, argv: Sequence[str]) -> SweepSpec:
    """Validate every argument into a SweepSpec; raises UsageError (nothing is written)."""
    try:
        experiment = get_experiment(arguments.experiment)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if arguments.preset is None:
        arguments.preset = experiment.default_preset
    if arguments.preset not in experiment.presets:
        raise UsageError(
            f"--preset {arguments.preset}: {experiment.name} has no such preset; its presets: "
            f"{', '.join(experiment.presets)}"
        )
    preset = experiment.presets[arguments.preset]
    recipe, model, data, run = parse_overrides(arguments.set, experiment, arguments.preset)
    if arguments.seeds is not None and arguments.seeds <= 0:
        raise UsageError(f"--seeds {arguments.seeds}: must be a positive integer")
    try:
        check_device(arguments.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if arguments.data_dir is not None and not arguments.data_dir.is_dir():
        raise UsageError(f"--data-dir {arguments.data_dir}: no such folder")
    source = data.pop("source", "local")
    spec = SweepSpec(
        experiment=experiment,
        preset=arguments.preset,
        methods=parse_methods(arguments.methods) or preset.methods,
        batch_sizes=parse_batch_sizes(arguments.batch_sizes) or preset.batch_sizes,
        seeds=arguments.seeds or preset.seeds,
        base_seeds=arguments.seeds,  # --seeds sets the base batch's seeds too (None: preset's)
        device=arguments.device,
        data_source=source,
        data_dir=arguments.data_dir,
        out_dir=arguments.out or USER_RUNS / experiment.name / arguments.preset,
        recipe_overrides=recipe,
        model_overrides=model,
        data_overrides=data,
        run=run,
        progress=not arguments.quiet,
        estimate=arguments.estimate,
        resume=arguments.resume,
        command=("reproduce/run.py", *argv),
    )
    try:
        check_config(spec)  # every key in its declared range (the experiment's config schema)
        plan_runs(spec)  # every recipe of the sweep is valid, or we say which is not
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_model_config(spec)
    try:
        check_machine(spec)  # memory and kernels this machine lacks: refused now, not mid-run
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return spec


def check_data(spec: SweepSpec) -> None:
    """The experiment's own check that its data is there (ImageNet, WMT16 are not shipped):
    UsageError with what to provide, before anything is written or trained."""
    if spec.experiment.check_data is None:
        return
    try:
        spec.experiment.check_data(spec.data_source, spec.data_dir, spec.data_config)
    except DataError as error:
        raise UsageError(str(error)) from None


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


def plan_estimate(spec: SweepSpec, train: Any) -> str:
    """--plan's time estimate: a few training steps timed on the sweep's device, multiplied out
    over the planned runs (reproduce.harness.sweep.estimate). Raises ValueError (exit 2) when the
    device is not there."""
    from ..run.devices import resolve_device
    from ..run.trainer import default_micro_batch_size
    from ..sweep import estimate

    device = resolve_device(spec.device)
    runs = plan_runs(spec)
    micro = spec.run.micro_batch_size or default_micro_batch_size(
        spec.experiment, min(run.batch_size for run in runs), device
    )
    cost = estimate.measure_step_cost(
        spec.experiment,
        spec.base_recipe,
        spec.model_config,
        spec.data_config,
        device,
        micro,
        train=train,
        precision=spec.run.precision,
    )
    return "\n\n".join(
        [
            estimate.describe(cost, device.describe()["device_name"]),
            estimate.sweep_estimate_table(cost, runs, train.steps_per_epoch),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.epilog = help_epilog()
    arguments = parser.parse_args(argv)
    try:
        spec = build_spec(arguments, argv)
        shard = parse_shard(arguments.shard)
        launch = parse_launch(arguments, spec)
        if shard is not None and spec.experiment.presets[spec.preset].budgets:
            raise UsageError(
                f"--shard with the {spec.preset!r} preset: each budget's sweep needs that "
                "budget's tuning first, which shards cannot wait for; use --launcher (ray, "
                "slurm or local), which runs the tuning runs, then the sweep runs"
            )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if arguments.plan:
        train = plan_train_data(spec)
        specs = [spec]
        if spec.experiment.presets[spec.preset].budgets:
            from ..sweep.budgets import budget_spec, budgets_of

            try:
                specs = [budget_spec(spec, epochs, {}) for epochs in budgets_of(spec)]
            except SweepError as error:
                print(f"error: {error}", file=sys.stderr)
                return USAGE_ERROR
        for planned in specs:
            if planned is not spec:
                print(
                    f"\nBudget E = {planned.base_recipe.epochs:g} epochs (the schedule stretched "
                    "to it; the lr shown is the base recipe's: the sweep tunes it at the base "
                    f"batch first, over {dict(spec.experiment.tuning_grid)}):\n"
                )
            print(resolved_plan_table(planned, train))
        source = "declared" if isinstance(train, CountedExamples) else "counted in the data"
        print(f"\nTraining examples per epoch: {train.steps_per_epoch(1):,.0f} ({source}).")
        if not arguments.estimate:
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
    try:
        check_data(spec)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    log = (lambda message: None) if arguments.quiet else print
    try:
        if launch is not None:
            from ..sweep.launch import check_not_under_torchrun, launch_sweep

            check_not_under_torchrun()
            failed = launch_sweep(spec, launch, log=log).failed
            if failed:
                print(f"error: {len(failed)} runs failed:", file=sys.stderr)
                for name, reason in failed.items():
                    print(f"  {name}: {reason}", file=sys.stderr)
                print("rerun the same command to retry them", file=sys.stderr)
                return 1
        elif spec.experiment.presets[spec.preset].budgets:
            run_budget_sweep(spec, log=log)
        else:
            run_sweep(spec, log=log, shard=shard)
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
    if not arguments.quiet and (shard is None or sweep_complete(spec)):
        print()
        print("\n".join(end_of_job_lines(spec)))
    return 0


def sweep_complete(spec: SweepSpec) -> bool:
    """Whether every planned run is recorded (a shard then finds the report written)."""
    from ..sweep.running import recorded

    return all(recorded(spec, run) is not None for run in plan_runs(spec))


def end_of_job_lines(spec: SweepSpec) -> list[str]:
    """What was learned, in a few lines: per budget of a budget sweep, or of the one sweep."""
    from .. import report

    published = PUBLISHED / spec.experiment.name / spec.preset
    if not spec.experiment.presets[spec.preset].budgets:
        if not (spec.out_dir / report.REPORT_FILES["summary"]).is_file():
            return [f"no report in {spec.out_dir} yet (no run is recorded there)"]
        return report.summary_lines(spec.out_dir, spec.experiment.divergence) + published_lines(
            spec.out_dir, published
        )
    from ..report.budgets import answer_lines, budget_tables
    from ..sweep.budgets import budget_folder, budgets_of

    lines = []
    for epochs in budgets_of(spec):
        folder = budget_folder(spec.out_dir, epochs)
        lines += report.summary_lines(folder, spec.experiment.divergence)
        lines += published_lines(folder, budget_folder(published, epochs))
    lines += answer_lines(budget_tables(spec.out_dir, spec.experiment))
    lines.append(f"budget report: {spec.out_dir / 'budgets.md'}")
    return lines


def published_lines(out_dir: Path, published: Path) -> list[str]:
    """The user's cells next to the published ones of the same preset, when those exist (and
    are not the folder just written: --out results/... publishes)."""
    from ..report import REPORT_FILES
    from ..report.published import comparison_lines

    if not (published / REPORT_FILES["summary"]).is_file():
        return []
    if out_dir.resolve() == published.resolve():
        return []
    return comparison_lines(out_dir, published)


def main_tune(argv: Sequence[str] | None = None) -> int:
    """reproduce/tune.py: train the experiment's tuning grid at its base batch."""
    from ..sweep.tuning import run_tuning

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
        from ..sweep.budgets import budget_folder, budgets_of, tune_budget

        try:
            for epochs in budgets_of(spec):
                tune_budget(spec, epochs, log=log)
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
    grid = {
        key: (spec.recipe_overrides[key],) if key in spec.recipe_overrides else values
        for key, values in spec.experiment.tuning_grid.items()
    }
    try:
        check_data(spec)
        folder = run_tuning(spec, grid, log=log)
    except (UsageError, SweepError, DataError, RecordError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (TrainedWorkKept, OSError) as stop:
        return report_stop(stop)
    print((folder / "tuning.md").read_text(encoding="utf-8"))
    return 0


def main_report(argv: Sequence[str] | None = None) -> int:
    """reproduce/report.py: regenerate every table and plot from the run records; optionally
    print the paper diff as JSON, fail on a missed verified target, or regenerate (or check) the
    README's results section."""

    from .. import report
    from ..core.io import atomic_write_text
    from ..report import readme as readme_results

    parser = argparse.ArgumentParser(
        prog="reproduce/report.py",
        description="Regenerate tables, paper diffs and plots from run records (results/*/*/runs).",
    )
    parser.add_argument(
        "folders",
        nargs="*",
        type=Path,
        help="result folders (default: every results/*/* with runs/)",
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each folder's paper-diff summary (from its paper_diff.json) as JSON",
    )
    parser.add_argument(
        "--fail-on-missed",
        action="store_true",
        help="exit 1 if any verified target or claim is missed, naming them",
    )
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument(
        "--readme",
        action="store_true",
        help="also rewrite the generated sections of README.md and docs/results.md",
    )
    readme.add_argument(
        "--check-readme",
        action="store_true",
        help="write nothing; exit 1 if the README's results section is not what --readme writes",
    )
    parser.add_argument(
        "--readme-file", type=Path, help="the README (default: README.md beside the results root)"
    )
    arguments = parser.parse_args(argv)
    readme_file = arguments.readme_file or arguments.results.parent / "README.md"

    def generated_readme() -> dict[Path, str]:
        """The README and docs/results.md as --readme writes them."""
        return readme_results.regenerated_pages(readme_file, arguments.results)

    if arguments.check_readme:
        if arguments.folders or arguments.json or arguments.fail_on_missed:
            print("error: --check-readme writes nothing and takes no other option", file=sys.stderr)
            return USAGE_ERROR
        try:
            fresh = generated_readme()
        except (readme_results.StaleReport, ValueError, OSError) as error:
            print(f"error: {error}; run `{readme_results.README_COMMAND}`", file=sys.stderr)
            return 1
        stale = [page for page, text in fresh.items() if text != page.read_text("utf-8")]
        if stale:
            print(
                f"error: the results section of {', '.join(map(str, stale))} is stale; "
                f"regenerate it with `{readme_results.README_COMMAND}` and commit it",
                file=sys.stderr,
            )
            return 1
        print(f"{', '.join(map(str, fresh))}: results section up to date")
        return 0

    from ..report.warmup_grid import grid_folders, is_grid_root, write_warmup_grid_report

    # A budget sweep's root (results/EXP/budget) stands for its budget folders (E10, E20, ...)
    budget_roots = [
        folder
        for folder in arguments.folders
        if not (folder / "runs").is_dir() and any(path.is_dir() for path in folder.glob("E*/runs"))
    ]
    # A warmup grid's root (results/EXP/warmup_grid) stands for its cells (lr=*/*)
    grid_roots = [folder for folder in arguments.folders if is_grid_root(folder)]
    folders = [
        *(f for f in arguments.folders if f not in budget_roots and f not in grid_roots),
        *(path.parent for root in budget_roots for path in sorted(root.glob("E*/runs"))),
    ]
    if not arguments.folders:
        folders = sorted(
            path.parent
            for pattern in ("*/*/runs", "*/*/E*/runs")
            for path in arguments.results.glob(pattern)
            if path.is_dir()
        )
        budget_roots = sorted(
            {path.parent.parent for path in arguments.results.glob("*/*/E*/runs")}
        )
        grid_roots = sorted(
            root for root in arguments.results.glob("*/warmup_grid") if is_grid_root(root)
        )
    # A grid cell is checked against the grid's plan (warmup_grid.md), not its preset's.
    grid_cells = {cell for root in grid_roots for cell in grid_folders(root)}
    folders = [*folders, *sorted(grid_cells)]
    registered = experiments()
    # Read and check every folder's records before writing anything: a bad record (truncated,
    # not UTF-8, missing a field) is named on one line with exit 2, and no report is touched.
    readable = []
    for folder in folders:
        if not (folder / "runs").is_dir():
            print(f"error: {folder} has no runs/ folder of records", file=sys.stderr)
            return USAGE_ERROR
        try:
            record_files = report.read_record_files(folder)
            if record_files:
                # Every record is judged by its experiment's current divergence rule on read.
                name = record_files[0].record["experiment"]
                if name in registered:
                    record_files = report.read_record_files(folder, registered[name].divergence)
                report.sweep_info([item.record for item in record_files])
        except ValueError as error:
            where = "" if str(error).startswith(str(folder)) else f"{folder}: "
            print(
                f"error: {where}{error}. Nothing was written: restore that record, or move it "
                "out of runs/ (a sweep retrains a run that has no record)",
                file=sys.stderr,
            )
            return USAGE_ERROR
        if not record_files:
            print(f"error: {folder}/runs holds no records", file=sys.stderr)
            return USAGE_ERROR
        name = record_files[0].record["experiment"]
        if name not in registered:
            print(f"error: {record_files[0].path}: unknown experiment {name!r}", file=sys.stderr)
            return USAGE_ERROR
        readable.append((folder, record_files, registered[name]))
    log = sys.stderr if arguments.json else sys.stdout  # with --json, stdout is the JSON alone
    missed_keys = ("kind", "what", "method", "batch_size", "target", "tolerance", "ours", "source")
    summaries = []
    for folder, record_files, experiment in readable:
        try:
            paths = report.write_report(
                folder,
                experiment.targets,
                experiment.claims,
                experiment.metric_for(preset)[2]
                if (preset := record_files[0].record["preset"]) in experiment.presets
                else experiment.band_floor,
                command=f"python reproduce/report.py {folder}",
                plan=None
                if folder in grid_cells
                else folder_plan(experiment, record_files[0].record),
                files=record_files,
                divergence=experiment.divergence,
            )
        except ValueError as error:  # records that contradict the experiment (e.g. its mode)
            print(f"error: {folder}: {error}; its reports were not written", file=sys.stderr)
            return USAGE_ERROR
        print(f"{folder}: wrote {', '.join(sorted(p.name for p in paths.values()))}", file=log)
        diff = json.loads(paths["paper_diff_json"].read_text(encoding="utf-8"))
        summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
        summaries.append(
            {
                "folder": folder.as_posix(),
                "experiment": diff["experiment"],
                "preset": diff["preset"],
                "primary_metric": diff["primary_metric"],
                "mode": diff["mode"],
                "verdicts": summary["paper_diff"]["verdicts"],
                "missed_verified": diff["missed_verified"],
                "proxy": summary.get("proxy"),  # a small stand-in for the paper's setting
                # the rows report.missed_verified counts: targets and claims judged "missed"
                "missed": [
                    {key: row[key] for key in missed_keys}
                    for row in diff["rows"]
                    if row["kind"] in ("target", "claim") and row["verdict"] == "missed"
                ],
            }
        )
    for root in budget_roots:
        from ..report.budgets import write_budget_report

        record = json.loads(next(root.glob("E*/runs/*.json")).read_text(encoding="utf-8"))
        paths = write_budget_report(root, registered[record["experiment"]])
        print(f"{root}: wrote {', '.join(sorted(p.name for p in paths.values()))}", file=log)
    for root in grid_roots:
        record = json.loads(next(root.glob("lr=*/*/runs/*.json")).read_text(encoding="utf-8"))
        experiment = registered[record["experiment"]]
        preset = record["preset"]
        floor = (
            experiment.metric_for(preset)[2]
            if preset in experiment.presets
            else experiment.band_floor
        )
        try:
            paths = write_warmup_grid_report(
                root, floor, experiment.divergence, f"python reproduce/report.py {root}"
            )
        except ValueError as error:
            print(f"error: {root}: {error}; its grid report was not written", file=sys.stderr)
            return USAGE_ERROR
        print(f"{root}: wrote {', '.join(sorted(p.name for p in paths.values()))}", file=log)
    if arguments.readme:
        try:
            pages = generated_readme()
            for page, text in pages.items():
                atomic_write_text(page, text)
        except (readme_results.StaleReport, ValueError, OSError) as error:
            print(f"error: README not written: {error}", file=sys.stderr)
            return 1
        print(f"{', '.join(map(str, pages))}: results section regenerated", file=log)
    missed_total = sum(summary["missed_verified"] for summary in summaries)
    if arguments.json:
        print(
            json.dumps(
                {"folders": summaries, "missed_verified": missed_total}, indent=1, sort_keys=True
            )
        )
    if arguments.fail_on_missed and missed_total:
        print(f"error: {missed_total} verified target(s) or claim(s) missed:", file=sys.stderr)
        for summary in summaries:
            for row in summary["missed"]:
                print(
                    f"  {summary['folder']}: {row['kind']} {row['what']!r} ({row['method']}, "
                    f"batch {row['batch_size']}): ours {row['ours']} vs {row['target']} "
                    f"± {row['tolerance']} ({row['source']})"
                    + (f" [{summary['proxy']['label']}]" if summary["proxy"] else ""),
                    file=sys.stderr,
                )
        return 1
    return 0
