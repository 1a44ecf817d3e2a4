"""The command line of reproduce/run.py (tune.py and advise.py take it too), parsed and checked
into a SweepSpec: small and stable (tests/test_cli.py guards the flag set).

New knobs belong in config, reached with ``--set``: recipe fields by name (``--set lr=0.2``),
``model.KEY``, ``data.KEY`` (``data.source=hub``) and ``run.KEY`` (``run.micro_batch_size=256``).
Misuse exits with code 2 and a message listing the valid choices, before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import date
from date import Recipe
from reproduce.datasets.integrity import DataError

from ..run.devices import DEVICE_KINDS, check_device
from ..run.experiment import OPTIONAL_PRESET_NAMES, PRESET_NAMES, Experiment
from ..run.registry import experiments, get_experiment
from ..run.settings import RunSettings
from ..run.trainer import PRECISIONS
from ..sweep.config_check import ConfigError, check_config, check_machine, check_model_config
from ..sweep.launch import LAUNCH_KEYS, LAUNCHERS, LaunchSettings
from ..sweep.planning import plan_runs
from ..sweep.spec import SweepSpec

DEFAULT_PRESET = "quick"

#: Where a user's runs go unless --out says otherwise: runs/EXPERIMENT/PRESET, gitignored, apart
#: from the published records in results/ (so that a fresh clone trains instead of finding every
#: run already recorded, and publishing stays an explicit --out results/...).
USER_RUNS = Path("runs")

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
    try:
        check_model_config(spec)  # the model builds with its config (on the meta device)
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
