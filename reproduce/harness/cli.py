"""The command line of reproduce/run.py: small and stable (tests/test_cli.py guards the flag set).

New knobs belong in config, reached with ``--set``: recipe fields by name (``--set lr=0.2``),
``model.KEY``, ``data.KEY`` (``data.source=hub``) and ``run.KEY`` (``run.micro_batch_size=256``).
Misuse exits with code 2 and a message listing the valid choices, before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import date
from date import Recipe
from reproduce.datasets.integrity import DataError

from .checkpoint import Preempted
from .devices import DEVICE_KINDS
from .experiment import PRESET_NAMES, Experiment
from .registry import experiments, get_experiment
from .sweep import (
    RunSettings,
    SweepError,
    SweepSpec,
    plan_runs,
    preset_plan,
    resolved_plan_table,
    run_sweep,
)
from .trainer import PRECISIONS

DEFAULT_PRESET = "quick"
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
    parser.add_argument("--methods", help="comma-separated scaling methods (default: the preset's)")
    parser.add_argument(
        "--batch-sizes", help="comma-separated global batch sizes (default: the preset's)"
    )
    parser.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        help=f"default: {DEFAULT_PRESET}, or the experiment's own default (gnmt: full)",
    )
    parser.add_argument(
        "--seeds", type=int, help="seeds per run (the base batch gets at least the preset's)"
    )
    parser.add_argument("--device", choices=DEVICE_KINDS, default="cpu")
    parser.add_argument(
        "--data-dir", type=Path, help="read the data from this folder instead of the repo's copy"
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default: results/EXPERIMENT/PRESET)"
    )
    parser.add_argument(
        "--plan", action="store_true", help="print the resolved recipes; train nothing"
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
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-run lines")
    return parser


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
                    "or model.KEY, data.KEY, run.KEY"
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
        elif namespace == "run":
            if name not in run_fields:
                raise UsageError(unknown_key(key, "run", run_fields))
            run[name] = convert(value, run_fields[name], key)
        else:
            raise UsageError(
                f"--set: unknown namespace in {key!r}; use a recipe field, model., data. or run."
            )
    if data.get("source", "local") not in experiment.data_sources:
        valid = ", ".join(experiment.data_sources)
        raise UsageError(f"--set data.source={data['source']!r}: valid choices: {valid}")
    if run.get("precision", "fp32") not in PRECISIONS:
        raise UsageError(f"--set run.precision: valid choices: {', '.join(PRECISIONS)}")
    micro = run.get("micro_batch_size")
    if micro is not None and micro <= 0:
        raise UsageError(f"--set run.micro_batch_size={micro}: must be a positive integer")
    return recipe, model, data, RunSettings(**run)


def build_spec(arguments: argparse.Namespace, argv: Sequence[str]) -> SweepSpec:
    """Validate every argument into a SweepSpec; raises UsageError (nothing is written)."""
    try:
        experiment = get_experiment(arguments.experiment)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if arguments.preset is None:
        arguments.preset = experiment.default_preset
    preset = experiment.presets[arguments.preset]
    recipe, model, data, run = parse_overrides(arguments.set, experiment, arguments.preset)
    if arguments.seeds is not None and arguments.seeds <= 0:
        raise UsageError(f"--seeds {arguments.seeds}: must be a positive integer")
    if arguments.data_dir is not None and not arguments.data_dir.is_dir():
        raise UsageError(f"--data-dir {arguments.data_dir}: no such folder")
    source = data.pop("source", "local")
    spec = SweepSpec(
        experiment=experiment,
        preset=arguments.preset,
        methods=parse_methods(arguments.methods) or preset.methods,
        batch_sizes=parse_batch_sizes(arguments.batch_sizes) or preset.batch_sizes,
        seeds=arguments.seeds or preset.seeds,
        device=arguments.device,
        data_source=source,
        data_dir=arguments.data_dir,
        out_dir=arguments.out or Path("results") / experiment.name / arguments.preset,
        recipe_overrides=recipe,
        model_overrides=model,
        data_overrides=data,
        run=run,
        progress=not arguments.quiet,
        resume=arguments.resume,
        command=("reproduce/run.py", *argv),
    )
    try:
        plan_runs(spec)  # every recipe of the sweep is valid, or we say which is not
    except ValueError as error:
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
    """The training data for --plan: the real split where it is there, else its declared size."""
    experiment = spec.experiment
    if experiment.check_data is not None and experiment.train_examples is not None:
        try:
            experiment.check_data(spec.data_source, spec.data_dir, spec.data_config)
        except DataError:
            return CountedExamples(experiment.train_examples(spec.data_config))
    return experiment.build_data(spec.data_source, spec.data_dir, spec.data_config).train


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.epilog = f"experiments: {', '.join(experiments())}; methods: {', '.join(date.METHODS)}"
    arguments = parser.parse_args(argv)
    try:
        spec = build_spec(arguments, argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    if arguments.plan:
        print(resolved_plan_table(spec, plan_train_data(spec)))
        return 0
    try:
        check_data(spec)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    log = (lambda message: None) if arguments.quiet else print
    try:
        run_sweep(spec, log=log)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except Preempted as stop:
        print(f"{stop}; rerun the same command with --resume to continue", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted before a checkpoint could be written; finished runs are recorded, "
            "rerun the same command (with --resume) to continue",
            file=sys.stderr,
        )
        return INTERRUPTED
    print(f"results: {spec.out_dir}")
    for name in ("tables.md", "paper_diff.md"):
        path = spec.out_dir / name
        if path.exists():
            print(path.read_text(encoding="utf-8"))
    return 0


def main_tune(argv: Sequence[str] | None = None) -> int:
    """reproduce/tune.py: train the experiment's tuning grid at its base batch."""
    from .tuning import run_tuning

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    parser.prog = "reproduce/tune.py"
    parser.description = (
        "Tune an experiment's base recipe at its base batch over the grid it declares, on the "
        "validation split (never the test set)."
    )
    arguments = parser.parse_args(argv)
    try:
        spec = build_spec(arguments, argv)
        if not spec.experiment.tuning_grid:
            raise UsageError(f"experiment {spec.experiment.name!r} declares no tuning grid")
        if arguments.out is None:
            spec = dataclasses.replace(
                spec, out_dir=Path("results") / spec.experiment.name / "tuning"
            )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    log = (lambda message: None) if arguments.quiet else print
    # `--set KEY=VALUE` on a grid key trains only that point of the axis (to split the grid over
    # processes); a final run without it finds every point recorded and writes the summary.
    grid = {
        key: (spec.recipe_overrides[key],) if key in spec.recipe_overrides else values
        for key, values in spec.experiment.tuning_grid.items()
    }
    folder = run_tuning(spec, grid, log=log)
    print((folder / "tuning.md").read_text(encoding="utf-8"))
    return 0


def main_report(argv: Sequence[str] | None = None) -> int:
    """reproduce/report.py: regenerate every table and plot from the run records; optionally
    print the paper diff as JSON, fail on a missed verified target, or regenerate (or check) the
    README's results section."""
    import os

    from . import readme_results
    from .io import atomic_write_text
    from .report import write_report

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
        help="also rewrite the README's results section from every results/*/full",
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
    link_prefix = Path(os.path.relpath(arguments.results, readme_file.parent)).as_posix()

    def generated_readme() -> str:
        section = readme_results.readme_results_section(arguments.results, link_prefix)
        return readme_results.replace_readme_section(readme_file.read_text("utf-8"), section)

    if arguments.check_readme:
        if arguments.folders or arguments.json or arguments.fail_on_missed:
            print("error: --check-readme writes nothing and takes no other option", file=sys.stderr)
            return USAGE_ERROR
        try:
            fresh = generated_readme()
        except (readme_results.StaleReport, ValueError, OSError) as error:
            print(f"error: {error}; run `{readme_results.README_COMMAND}`", file=sys.stderr)
            return 1
        if fresh != readme_file.read_text("utf-8"):
            print(
                f"error: the results section of {readme_file} is stale; regenerate it with "
                f"`{readme_results.README_COMMAND}` and commit it",
                file=sys.stderr,
            )
            return 1
        print(f"{readme_file}: results section up to date")
        return 0

    folders = arguments.folders or sorted(
        path.parent for path in arguments.results.glob("*/*/runs") if path.is_dir()
    )
    registered = experiments()
    for folder in folders:
        if not (folder / "runs").is_dir():
            print(f"error: {folder} has no runs/ folder of records", file=sys.stderr)
            return USAGE_ERROR
    log = sys.stderr if arguments.json else sys.stdout  # with --json, stdout is the JSON alone
    missed_keys = ("kind", "what", "method", "batch_size", "target", "tolerance", "ours", "source")
    summaries = []
    for folder in folders:
        record_files = sorted((folder / "runs").glob("*.json"))
        if not record_files:
            print(f"error: {folder}/runs holds no records", file=sys.stderr)
            return USAGE_ERROR
        first = json.loads(record_files[0].read_text(encoding="utf-8"))
        name, preset = first.get("experiment"), first.get("preset")
        if name not in registered:
            print(f"error: {record_files[0]}: unknown experiment {name!r}", file=sys.stderr)
            return USAGE_ERROR
        experiment = registered[name]
        paths = write_report(
            folder,
            experiment.targets,
            experiment.claims,
            experiment.metric_for(preset)[2]
            if preset in experiment.presets
            else experiment.band_floor,
            command=f"python reproduce/report.py {folder}",
            plan=preset_plan(experiment, preset) if preset in experiment.presets else None,
        )
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
                # the rows report.missed_verified counts: targets and claims judged "missed"
                "missed": [
                    {key: row[key] for key in missed_keys}
                    for row in diff["rows"]
                    if row["kind"] in ("target", "claim") and row["verdict"] == "missed"
                ],
            }
        )
    if arguments.readme:
        try:
            atomic_write_text(readme_file, generated_readme())
        except (readme_results.StaleReport, ValueError, OSError) as error:
            print(f"error: README not written: {error}", file=sys.stderr)
            return 1
        print(f"{readme_file}: results section regenerated", file=log)
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
                    f"± {row['tolerance']} ({row['source']})",
                    file=sys.stderr,
                )
        return 1
    return 0
