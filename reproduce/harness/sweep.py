"""A batch-size sweep: every (method, batch size, seed) of an experiment, one record each.

Runs are planned (and every recipe validated) before anything is written. At the base batch
(k = 1) several methods resolve to the same recipe; such a run is trained once and its record is
written for each method, marked ``same_run_as``. A run whose record already exists with the same
configuration is not trained again, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import date
from date import Recipe

from . import report
from .checkpoint import CheckpointPolicy, CorruptCheckpoint, load_checkpoint, set_aside
from .devices import Device, resolve_device
from .distributed import init_distributed
from .experiment import DataBundle, Experiment, TrainData
from .io import atomic_write_json
from .records import (
    SCHEMA_VERSION,
    config_key,
    environment,
    git_state,
    read_record,
    record_name,
)
from .trainer import (
    RunResult,
    default_micro_batch_size,
    measure_micro_batch_size,
    train,
)


@dataclass(frozen=True)
class RunSettings:
    """Knobs of how a run is executed (not what is trained); set with ``--set run.KEY=VALUE``."""

    micro_batch_size: int | None = None  # None: the experiment's rule for the device
    measure_micro_batch: bool = False  # opt-in: time the candidates and take the fastest
    evals_per_epoch: float | None = None  # None: the preset's
    precision: str = "fp32"  # or "bf16": autocast forward passes; master weights stay fp32
    checkpoint_every_epochs: float | None = None
    checkpoint_every_minutes: float | None = 10.0


@dataclass(frozen=True)
class SweepSpec:
    """Everything a sweep depends on; nothing is read from globals."""

    experiment: Experiment
    preset: str
    methods: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    seeds: int
    base_seeds: int | None = None  # seeds at the base batch; None: the preset's
    device: str = "cpu"
    data_source: str = "local"
    data_dir: Path | None = None
    out_dir: Path = Path("results")
    recipe_overrides: Mapping[str, Any] = field(default_factory=dict)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    data_overrides: Mapping[str, Any] = field(default_factory=dict)
    run: RunSettings = RunSettings()
    progress: bool = True
    resume: bool = False
    command: tuple[str, ...] = ()

    @property
    def base_recipe(self) -> Recipe:
        return self.experiment.recipe_for(self.preset, self.recipe_overrides)

    @property
    def model_config(self) -> dict[str, Any]:
        preset = self.experiment.presets[self.preset]
        return {**self.experiment.model_defaults, **preset.model, **self.model_overrides}

    @property
    def data_config(self) -> dict[str, Any]:
        preset = self.experiment.presets[self.preset]
        return {**self.experiment.data_defaults, **preset.data, **self.data_overrides}

    @property
    def evals_per_epoch(self) -> float:
        return self.run.evals_per_epoch or self.experiment.presets[self.preset].evals_per_epoch


@dataclass(frozen=True)
class PlannedRun:
    method: str
    batch_size: int
    seed: int
    recipe: Recipe
    same_run_as: str | None = None  # record name of the identical run trained in its place

    @property
    def name(self) -> str:
        return record_name(self.method, self.batch_size, self.seed)


def plan_runs(spec: SweepSpec) -> list[PlannedRun]:
    """Every run of the sweep, with its resolved recipe; raises ValueError on any invalid one."""
    base = spec.base_recipe
    preset = spec.experiment.presets[spec.preset]
    planned: list[PlannedRun] = []
    trained: dict[tuple[str, int], str] = {}  # (recipe, seed) -> record name of the trained run
    for batch_size in spec.batch_sizes:
        seeds = spec.seeds
        if batch_size == base.batch_size:
            seeds = max(seeds, preset.base_seeds if spec.base_seeds is None else spec.base_seeds)
        for method in spec.methods:
            recipe = date.scale(base, batch_size, method)
            for seed in range(seeds):
                identity = (json.dumps(recipe.to_dict(), sort_keys=True), seed)
                run = PlannedRun(date.canonical_method(method), batch_size, seed, recipe)
                if identity in trained:
                    run = dataclasses.replace(run, same_run_as=trained[identity])
                else:
                    trained[identity] = run.name
                planned.append(run)
    return planned


def preset_plan(experiment: Experiment, preset: str) -> list[PlannedRun]:
    """Every run of ``preset`` as the preset defines it (its methods, batches and seeds, no
    overrides): what a report checks a results folder's coverage against."""
    settings = experiment.presets[preset]
    return plan_runs(
        SweepSpec(
            experiment=experiment,
            preset=preset,
            methods=settings.methods,
            batch_sizes=settings.batch_sizes,
            seeds=settings.seeds,
        )
    )


def run_config(spec: SweepSpec, run: PlannedRun) -> dict[str, Any]:
    """What determines this run's result: a changed recipe, model or data config retrains it."""
    return {
        "experiment": spec.experiment.name,
        "recipe": run.recipe.to_dict(),
        "seed": run.seed,
        "model": spec.model_config,
        "data": spec.data_config,
        "data_source": spec.data_source,
        "evals_per_epoch": spec.evals_per_epoch,
        "precision": spec.run.precision,
        "time_to_target": spec.experiment.time_to_target.to_dict()
        if spec.experiment.time_to_target
        else None,
    }


def run_key(spec: SweepSpec, run: PlannedRun) -> str:
    """The hash of ``run_config``: records and checkpoints carry it."""
    return config_key(run_config(spec, run))


class SweepError(ValueError):
    """A problem with the user's input or files, found before training: exit code 2."""


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """``key: saved -> current`` for every leaf where two run configs differ."""
    lines = []
    for key in sorted(set(saved) | set(current), key=str):
        before, after = saved.get(key, "(absent)"), current.get(key, "(absent)")
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            lines += config_differences(before, after, f"{prefix}{key}.")
        elif json.dumps(before, sort_keys=True, default=str) != json.dumps(
            after, sort_keys=True, default=str
        ):
            lines.append(f"{prefix}{key}: {before!r} in the checkpoint, {after!r} now")
    return lines


def check_checkpoint(
    spec: SweepSpec, run: PlannedRun, path: Path, log=print
) -> dict[str, Any] | None:
    """Whether this run resumes from its checkpoint (a summary of it) or starts afresh (None).

    A checkpoint that cannot be read is set aside (renamed, kept) when the run starts afresh
    anyway; with --resume it is an error, because the user asked to continue it. With --resume, a
    checkpoint made for another configuration is refused: continuing it would train the old
    configuration under the new one's name.
    """
    try:
        saved = load_checkpoint(path)
    except CorruptCheckpoint as error:
        if spec.resume:
            raise SweepError(
                f"--resume: {error}. Delete or move that file to start the run afresh "
                "(or rerun without --resume, which sets it aside and starts afresh)"
            ) from None
        aside = set_aside(path)
        log(f"{error}; set aside as {aside.name}, the run starts afresh")
        return None
    if saved is None:
        return None
    if not spec.resume:
        log(f"{path}: a checkpoint exists; starting afresh (pass --resume to continue it)")
        return None
    key = run_key(spec, run)
    if saved.get("config_key") != key:
        differences = config_differences(saved.get("config") or {}, run_config(spec, run))
        detail = "; ".join(differences) if differences else "it predates config keys"
        raise SweepError(
            f"--resume: the checkpoint {path} was made with config key "
            f"{saved.get('config_key')}, this run's is {key} ({detail}). Rerun with the "
            "checkpoint's settings to continue it, or delete the checkpoint to start afresh"
        )
    # Keep only what choosing the micro-batch needs; the trainer reads the file again.
    return {"progress": {"micro_batches": saved["progress"].get("micro_batches", [])}}


def check_writable(folder: Path) -> None:
    """Fail now, not after hours of training, when results cannot be written to ``folder``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise SweepError(
            f"--out {folder}: cannot write there ({error.strerror or error}); "
            "choose another folder with --out"
        ) from None


def build_record(
    spec: SweepSpec,
    run: PlannedRun,
    result: RunResult,
    env: dict[str, Any],
    data_info: Mapping[str, Any],
    wall_seconds: float,
    world_size: int = 1,
    experiment_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    experiment = spec.experiment
    target = experiment.time_to_target
    metric, mode, _ = experiment.metric_for(spec.preset)
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": experiment.name,
        "preset": spec.preset,
        "method": run.method,
        "batch_size": run.batch_size,
        "base_batch_size": spec.base_recipe.batch_size,
        "seed": run.seed,
        "status": result.status,
        "primary_metric": metric,
        "mode": mode,
        "final": result.final,
        "time_to_target": (
            {"metric": target.metric, "value": target.value, "mode": target.mode}
            if target
            else None
        ),
        "steps_to_target": result.progress.steps_to_target,
        "seconds_to_target": result.progress.seconds_to_target,
        "total_steps": result.total_steps,
        "steps_per_epoch": result.steps_per_epoch,
        "diverged_at_step": result.divergence["step"] if result.divergence else None,
        "divergence": result.divergence,
        "model_parameters": result.model_parameters,
        "micro_batch_size": result.progress.micro_batch_size,
        "micro_batches": result.progress.micro_batches,
        "accumulation_steps": result.accumulation_steps,
        "world_size": world_size,
        "precision": spec.run.precision,
        "resumed_from_step": result.resumed_from_step,
        "recipe": run.recipe.to_dict(),
        "base_recipe": spec.base_recipe.to_dict(),
        "model_config": spec.model_config,
        "data": {**data_info, **spec.data_config},
        "experiment_info": dict(experiment_info) if experiment_info is not None else None,
        "config_key": run_key(spec, run),
        "same_run_as": None,
        "env": env,
        "curves": result.progress.curves,
        "evals": result.progress.evals,
        "wall_seconds": wall_seconds,
        "train_seconds": result.progress.train_seconds,
    }


def choose_micro_batch(
    spec: SweepSpec,
    data: DataBundle,
    per_device_batch: int,
    device: Device,
    saved: Mapping[str, Any] | None,
    cache: dict[tuple, dict[int, float]],
) -> int:
    """The run's micro-batch: the user's (``run.micro_batch_size``), else a resumed
    checkpoint's, else measured when asked (``run.measure_micro_batch``), else the experiment's
    deterministic rule for the device."""
    if spec.run.micro_batch_size is not None:
        return spec.run.micro_batch_size
    segments = (saved or {}).get("progress", {}).get("micro_batches") or []
    if segments:
        return int(segments[-1]["size"])
    if spec.run.measure_micro_batch:
        return measure_micro_batch_size(
            spec.experiment, spec.model_config, data, per_device_batch, device, cache
        )
    return default_micro_batch_size(spec.experiment, per_device_batch, device)


def run_sweep(spec: SweepSpec, log=print) -> list[dict[str, Any]]:
    """Train every planned run not already recorded, write the records, then the report.

    Under torchrun every rank trains its slice of each global batch; only rank 0 writes.
    """
    planned = plan_runs(spec)
    check_writable(spec.out_dir)
    git_state()  # pin the commit now, before any long training
    context = init_distributed(spec.device)
    device = resolve_device(spec.device, context.local_rank)
    if not context.is_main:
        log = _silent
    runs_dir = spec.out_dir / "runs"
    checkpoints_dir = spec.out_dir / "checkpoints"
    existing = {run.name: read_record(runs_dir / run.name) for run in planned}
    to_train = [
        run
        for run in planned
        if run.same_run_as is None
        and (existing[run.name] or {}).get("config_key") != run_key(spec, run)
    ]
    saved_checkpoints = {
        run.name: check_checkpoint(spec, run, checkpoints_dir / f"{Path(run.name).stem}.pt", log)
        for run in to_train
    }
    data = spec.experiment.build_data(spec.data_source, spec.data_dir, spec.data_config)
    micro_batch_cache: dict[tuple, dict[int, float]] = {}
    written: dict[str, dict[str, Any]] = {}
    for index, run in enumerate(planned, start=1):
        path = runs_dir / run.name
        key = run_key(spec, run)
        recorded = existing[run.name]
        label = (
            f"[{index}/{len(planned)}] {spec.experiment.name} {run.method} "
            f"b={run.batch_size} seed={run.seed}"
        )
        if recorded is not None and recorded.get("config_key") == key:
            log(f"{label}: already recorded ({recorded['status']}), skipped")
            written[run.name] = recorded
            continue
        if run.same_run_as is not None:
            record = {
                **written[run.same_run_as],
                "method": run.method,
                "same_run_as": run.same_run_as,
            }
            if context.is_main:
                atomic_write_json(path, record)
            written[run.name] = record
            log(f"{label}: same recipe as {run.same_run_as} (k = 1), record shared")
            continue
        saved = saved_checkpoints[run.name]
        per_rank_batch = run.batch_size // context.world_size
        micro = context.broadcast_int(
            choose_micro_batch(spec, data, per_rank_batch, device, saved, micro_batch_cache)
        )
        checkpoint_path = checkpoints_dir / f"{Path(run.name).stem}.pt"
        steps_per_epoch = data.train.steps_per_epoch(run.batch_size)
        every_epochs = spec.run.checkpoint_every_epochs
        every_minutes = spec.run.checkpoint_every_minutes
        policy = CheckpointPolicy(
            path=checkpoint_path,
            every_steps=max(1, round(every_epochs * steps_per_epoch)) if every_epochs else None,
            every_seconds=every_minutes * 60 if every_minutes else None,
        )
        started = time.perf_counter()
        result = train(
            spec.experiment,
            run.recipe,
            data,
            spec.model_config,
            run.seed,
            device,
            micro_batch_size=micro,
            evals_per_epoch=spec.evals_per_epoch,
            progress=spec.progress,
            description=label,
            checkpoint=policy,
            resume=saved is not None,
            context=context,
            precision=spec.run.precision,
            config_key=key,
            config=run_config(spec, run),
        )
        env = environment(device.describe(), list(spec.command))
        hook = spec.experiment.record_info
        record = build_record(
            spec,
            run,
            result,
            env,
            data.info,
            time.perf_counter() - started,
            context.world_size,
            hook(data, run.recipe) if hook is not None else None,
        )
        if context.is_main:
            atomic_write_json(path, record)
            checkpoint_path.unlink(missing_ok=True)
        written[run.name] = record
        name = spec.experiment.metric_for(spec.preset)[0]
        metric = result.final.get(name)
        summary = f"{name}={metric:.4f}" if metric is not None else ""
        if result.divergence:
            summary += f" ({result.divergence['reason']})"
        seconds = f"{result.progress.train_seconds:.1f}s"
        log(f"{label}: {result.status} {summary} in {seconds} (micro-batch {micro})")
    if context.is_main:
        write_report(spec)
    context.barrier()
    return list(written.values())


def _silent(message: str) -> None:
    """The log of ranks other than 0."""


def write_report(spec: SweepSpec) -> dict[str, Path]:
    experiment = spec.experiment
    return report.write_report(
        spec.out_dir,
        experiment.targets,
        experiment.claims,
        experiment.metric_for(spec.preset)[2],
        command=f"python reproduce/report.py {spec.out_dir}",
        plan=preset_plan(experiment, spec.preset),
    )


def resolved_plan_table(spec: SweepSpec, train_data: TrainData | None = None) -> str:
    """The resolved recipe of every planned run, as a table (``--plan``); with the training data,
    also the warmup and total steps the trainer will take."""
    from tabulate import tabulate

    rows = []
    for run in plan_runs(spec):
        recipe = run.recipe
        row = [
            run.method,
            run.batch_size,
            run.seed,
            f"{recipe.lr:.4g}",
            f"{recipe.warmup_epochs:.4g}",
        ]
        if train_data is not None:
            steps_per_epoch = train_data.steps_per_epoch(run.batch_size)
            row += [
                f"{date.warmup_steps(recipe, steps_per_epoch):.1f}",
                date.total_steps(recipe, steps_per_epoch),
            ]
        row += [f"{recipe.epochs:g}", recipe.decay, recipe.optimizer, run.same_run_as or ""]
        rows.append(row)
    headers = ["method", "batch", "seed", "peak lr", "warmup epochs"]
    if train_data is not None:
        headers += ["warmup steps", "total steps"]
    headers += ["epochs", "decay", "optimizer", "same run as"]
    return tabulate(rows, headers=headers, tablefmt="github")
