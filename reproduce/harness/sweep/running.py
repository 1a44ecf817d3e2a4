"""A batch-size sweep: every (method, batch size, seed) of an experiment, one record each.

Runs are planned (and every recipe validated) before anything is written. At the base batch
(k = 1) several methods resolve to the same recipe; such a run is trained once and its record is
written for each method, marked ``same_run_as``. A run whose record already exists with the same
configuration is not trained again, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import date
from date import Recipe

from .. import report
from ..core.io import atomic_write_json, remove_stale_temporaries
from ..core.records import SCHEMA_VERSION, read_record, record_name
from ..run.checkpoint import CheckpointPolicy, CorruptCheckpoint, load_checkpoint, set_aside
from ..run.devices import Device, resolve_device
from ..run.distributed import DistributedContext, init_distributed
from ..run.experiment import DataBundle, Experiment, TrainData, proxy_record
from ..run.provenance import config_key, environment, git_state
from ..run.trainer import (
    EVALUATION_FAILED,
    RunResult,
    default_micro_batch_size,
    measure_micro_batch_size,
    train,
)
from ..run.unfinished import (
    UNFINISHED_FOLDER,
    ResultsRescued,
    RunsUnfinished,
    unfinished_path,
    unfinished_record,
    write_record,
)
from .claims import CLAIMS_FOLDER, Claim


@dataclass(frozen=True)
class RunSettings:
    """Knobs of how a run is executed (not what is trained); set with ``--set run.KEY=VALUE``."""

    micro_batch_size: int | None = None  # None: the experiment's rule for the device
    measure_micro_batch: bool = False  # opt-in: time the candidates and take the fastest
    measure_noise: bool = True  # gradient noise scale in the curves (trainer's noise_probe.py)
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
    estimate: bool = False  # time a few steps and print the training time first (never recorded)
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
    float32_max = 3.4028234663852886e38  # torch.finfo(torch.float32).max
    for batch_size in spec.batch_sizes:
        seeds = spec.seeds
        if batch_size == base.batch_size:
            seeds = max(seeds, preset.base_seeds if spec.base_seeds is None else spec.base_seeds)
        decisive = batch_size % base.batch_size == 0 and (
            batch_size // base.batch_size in preset.decisive_scales
        )
        for method in spec.methods:
            recipe = date.scale(base, batch_size, method)
            if recipe.lr > float32_max:
                raise ValueError(
                    f"lr={base.lr:g}: the {method} peak lr at batch {batch_size} is "
                    f"{recipe.lr:g}, beyond float32's range (the parameters' dtype); use a "
                    "smaller --set lr"
                )
            method_seeds = seeds
            if decisive and date.canonical_method(method) in preset.decisive_methods:
                method_seeds = max(seeds, preset.decisive_seeds)
                if spec.base_seeds is not None:  # --seeds N: N everywhere
                    method_seeds = spec.base_seeds
            for seed in range(method_seeds):
                identity = (json.dumps(recipe.to_dict(), sort_keys=True), seed)
                run = PlannedRun(date.canonical_method(method), batch_size, seed, recipe)
                if identity in trained:
                    run = dataclasses.replace(run, same_run_as=trained[identity])
                else:
                    trained[identity] = run.name
                planned.append(run)
    return planned


def preset_plan(
    experiment: Experiment, preset: str, recipe_overrides: Mapping[str, Any] | None = None
) -> list[PlannedRun]:
    """Every run of ``preset`` as the preset defines it (its methods, batches and seeds), from
    the base recipe with ``recipe_overrides`` (a budget's epochs and tuned lr): what a report
    checks a results folder's coverage against."""
    settings = experiment.presets[preset]
    return plan_runs(
        SweepSpec(
            experiment=experiment,
            preset=preset,
            methods=settings.methods,
            batch_sizes=settings.batch_sizes,
            seeds=settings.seeds,
            recipe_overrides=dict(recipe_overrides or {}),
        )
    )


def folder_plan(experiment: Experiment, record: Mapping[str, Any]) -> list[PlannedRun] | None:
    """The preset plan the folder of ``record`` is checked against: the preset's own, and for a
    budget folder the preset's at that budget with the base recipe tuned for it (its epochs and
    tuning-grid keys, taken from the record's base recipe). None when there is no plan."""
    preset = record.get("preset")
    if preset not in experiment.presets:
        return None
    overrides = {}
    if experiment.presets[preset].budgets:  # the budget's (stretched) schedule and tuned point
        base = record.get("base_recipe") or {}
        keys = ("epochs", "decay_start_epoch", "decay_rate", "milestones", *experiment.tuning_grid)
        overrides = {key: base[key] for key in keys if key in base}
        if "milestones" in overrides:
            overrides["milestones"] = tuple(overrides["milestones"])
    try:
        return preset_plan(experiment, preset, overrides)
    except ValueError:  # the preset's batches cannot all be planned from this recipe
        return None


def run_config(spec: SweepSpec, run: PlannedRun) -> dict[str, Any]:
    """What determines this run's result: a changed recipe, model or data config retrains it."""
    return {
        "experiment": spec.experiment.name,
        "recipe": run.recipe.to_dict(),
        "seed": run.seed,
        "model": spec.model_config,
        "data": {
            key: value
            for key, value in spec.data_config.items()
            if key not in spec.experiment.data_runtime_keys
        },
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
    spec: SweepSpec, run: PlannedRun, path: Path, log=print, resume_matching: bool = False
) -> dict[str, Any] | None:
    """Whether this run resumes from its checkpoint (a summary of it) or starts afresh (None).

    A checkpoint that cannot be read is set aside (renamed, kept) when the run starts afresh
    anyway; with --resume it is an error, because the user asked to continue it. With --resume, a
    checkpoint made for another configuration is refused: continuing it would train the old
    configuration under the new one's name. With ``resume_matching`` (a launcher's or a shard's
    worker, which picks up what a killed worker left), a checkpoint made with this run's config
    key is continued without --resume, and one made for another configuration is not used.
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
        print(
            f"warning: {error}; set aside as {aside.name}, the run starts afresh", file=sys.stderr
        )
        return None
    if saved is None:
        return None
    key = run_key(spec, run)
    if saved.get("trained") and saved.get("config_key") == key and not spec.resume:
        # Every step of this very run is done: evaluating it gives the record retraining would.
        log(f"{path}: this run's trained checkpoint; evaluating it (no retraining)")
        return {"progress": {"micro_batches": saved["progress"].get("micro_batches", [])}}
    if resume_matching and not spec.resume:
        if saved.get("config_key") != key:
            log(f"{path}: a checkpoint of another configuration exists; starting afresh")
            return None
        return {"progress": {"micro_batches": saved["progress"].get("micro_batches", [])}}
    if not spec.resume:
        log(f"{path}: a checkpoint exists; starting afresh (pass --resume to continue it)")
        return None
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
    """Fail now, not after hours of training, when results cannot be written to ``folder``.
    Nothing is created: the check writes a temporary file in the folder, or in its nearest
    existing parent when the folder does not exist yet, and removes it."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as error:
        raise SweepError(
            f"--out {folder}: cannot write there ({error.strerror or error}); "
            "choose another folder with --out"
        ) from None


def check_data_size(spec: SweepSpec, train: TrainData) -> None:
    """Every planned batch needs at least one full step of training data: a split smaller than
    one batch (data.train_examples too small, say) would otherwise train on repeated examples and
    be recorded as an ordinary run."""
    for batch_size in spec.batch_sizes:
        try:
            steps = train.steps_per_epoch(batch_size)
        except ValueError as error:  # a split the stream cannot lay out at this batch
            raise SweepError(
                f"batch {batch_size}: {error}; use smaller --batch-sizes or more training data"
            ) from None
        if not steps >= 1:
            overrides = " ".join(f"data.{k}={v}" for k, v in spec.data_overrides.items())
            raise SweepError(
                f"the training split has less than one batch of {batch_size} "
                f"({steps:.3g} steps per epoch)"
                + (f" with --set {overrides}" if overrides else "")
                + "; use smaller --batch-sizes or more training data"
            )


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
        "proxy": proxy_record(experiment.presets[spec.preset]),
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
        "gradient_noise": result.progress.gradient_noise,
        "accumulation_steps": result.accumulation_steps,
        "world_size": world_size,
        "precision": spec.run.precision,
        "resumed_from_step": result.resumed_from_step,
        "epoch_budget": run.recipe.epochs,
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


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class SweepProgress:
    """Runs done, diverged, running and failed, and an ETA from the examples-per-second of the
    runs this sweep has trained (every run reads ``epochs`` passes over the data, whatever its
    batch); with ``parallel`` workers the work left is shared among them."""

    total: int
    done: int = 0
    diverged: int = 0
    seconds: float = 0.0
    examples: float = 0.0
    remaining_examples: float = 0.0
    running: int = 0
    failed: int = 0
    parallel: int = 1

    def finished(self, status: str, examples: float, seconds: float) -> None:
        """A run ended (``status`` ok or diverged) after ``seconds`` of wall time (training and
        evaluation)."""
        self.done += 1
        self.diverged += status == "diverged"
        self.seconds += seconds
        self.examples += examples
        self.remaining_examples -= examples

    def gave_up(self, examples: float) -> None:
        """A run failed for good (a launcher's job, after its retries)."""
        self.failed += 1
        self.remaining_examples -= examples

    def line(self) -> str:
        text = f"sweep: {self.done}/{self.total} runs trained"
        if self.running:
            text += f", {self.running} running"
        if self.diverged:
            text += f", {self.diverged} diverged"
        if self.failed:
            text += f", {self.failed} failed"
        if self.done + self.failed < self.total and self.examples > 0 and self.seconds > 0:
            workers = max(1, min(self.parallel, self.total - self.done - self.failed))
            eta = self.remaining_examples * self.seconds / self.examples / workers
            text += f", about {format_duration(eta)} left"
        return text


def run_examples(run: PlannedRun, train: TrainData) -> float:
    """Examples a run trains on: its steps times its batch."""
    return date.total_steps(run.recipe, train.steps_per_epoch(run.batch_size)) * run.batch_size


@dataclass(frozen=True)
class RunGroup:
    """A run to train and the runs recorded as copies of it (``same_run_as``, at k = 1): the
    unit a launcher hands to one job, so that a copy is written once its source is recorded."""

    source: PlannedRun
    copies: tuple[PlannedRun, ...] = ()

    @property
    def runs(self) -> tuple[PlannedRun, ...]:
        return (self.source, *self.copies)


def run_groups(planned: list[PlannedRun]) -> list[RunGroup]:
    """The plan as groups, in plan order of their sources."""
    copies: dict[str, list[PlannedRun]] = {}
    for run in planned:
        if run.same_run_as is not None:
            copies.setdefault(run.same_run_as, []).append(run)
    return [
        RunGroup(run, tuple(copies.get(run.name, ()))) for run in planned if run.same_run_as is None
    ]


def shard_runs(planned: list[PlannedRun], index: int, count: int) -> list[PlannedRun]:
    """Shard ``index`` of ``count`` (0-based): every ``count``-th group of the plan, starting at
    ``index``, so that the shards cover the plan exactly once, each holding a mix of batch sizes,
    and every copy sits in the shard of the run it copies."""
    chosen = {run.name for group in run_groups(planned)[index::count] for run in group.runs}
    return [run for run in planned if run.name in chosen]


@dataclass
class Worker:
    """What a process needs to train runs: the data, its device and distributed context."""

    data: DataBundle
    device: Device
    context: DistributedContext
    micro_batch_cache: dict[tuple, dict[int, float]] = field(default_factory=dict)


def start_worker(spec: SweepSpec) -> Worker:
    """Load the data (checked against every batch of the sweep), pin the commit, and join the
    distributed world when there is one."""
    data = spec.experiment.build_data(spec.data_source, spec.data_dir, spec.data_config)
    check_data_size(spec, data.train)
    git_state()  # pin the commit now, before any long training
    context = init_distributed(spec.device)
    return Worker(data, resolve_device(spec.device, context.local_rank), context)


def checkpoint_path(spec: SweepSpec, run: PlannedRun) -> Path:
    return spec.out_dir / "checkpoints" / f"{Path(run.name).stem}.pt"


def run_label(spec: SweepSpec, run: PlannedRun) -> str:
    return f"{spec.experiment.name} {run.method} b={run.batch_size} seed={run.seed}"


def recorded(spec: SweepSpec, run: PlannedRun) -> dict[str, Any] | None:
    """The run's record when one exists with this configuration, else None."""
    record = read_record(spec.out_dir / "runs" / run.name)
    return record if record is not None and record.get("config_key") == run_key(spec, run) else None


def claim_run(spec: SweepSpec, run: PlannedRun, context: DistributedContext) -> Claim | None:
    """The claim on ``run`` (rank 0 takes it for every rank), or None while a live worker holds
    it; the claim's ``holder`` says who, on rank 0."""
    claim = Claim(spec.out_dir / CLAIMS_FOLDER, Path(run.name).stem)
    acquired = context.broadcast_int(int(claim.acquire()) if context.is_main else 0)
    if not acquired:
        claim.release()
        return None
    return claim


def claim_holder(claim_folder: Path, run: PlannedRun) -> str:
    """Who holds ``run``'s claim, for a log line."""
    claim = Claim(claim_folder, Path(run.name).stem)
    generations = claim.generations()
    if generations and claim.stale_reason(generations[-1]) is None and claim.holder:
        return claim.holder.describe()
    return "another worker"


def train_run(
    spec: SweepSpec,
    run: PlannedRun,
    worker: Worker,
    saved: Mapping[str, Any] | None,
    label: str,
    log=print,
) -> tuple[dict[str, Any], RunResult, float]:
    """Train one run (continuing its checkpoint when ``saved`` says so) and build its record;
    nothing is written but checkpoints."""
    data, context = worker.data, worker.context
    per_rank_batch = run.batch_size // context.world_size
    micro = context.broadcast_int(
        choose_micro_batch(
            spec, data, per_rank_batch, worker.device, saved, worker.micro_batch_cache
        )
    )
    steps_per_epoch = data.train.steps_per_epoch(run.batch_size)
    log(
        f"{label}: {date.total_steps(run.recipe, steps_per_epoch)} steps "
        f"(epochs {run.recipe.epochs:g}), peak lr {run.recipe.lr:.4g}, warmup "
        f"{run.recipe.warmup_epochs:.4g} epochs, micro-batch {micro}"
        + (", resuming from its checkpoint" if saved is not None else "")
    )
    every_epochs = spec.run.checkpoint_every_epochs
    every_minutes = spec.run.checkpoint_every_minutes
    policy = CheckpointPolicy(
        path=checkpoint_path(spec, run),
        every_steps=max(1, round(every_epochs * steps_per_epoch)) if every_epochs else None,
        every_seconds=every_minutes * 60 if every_minutes else None,
        out_dir=spec.out_dir,
    )
    started = time.perf_counter()
    result = train(
        spec.experiment,
        run.recipe,
        data,
        spec.model_config,
        run.seed,
        worker.device,
        micro_batch_size=micro,
        evals_per_epoch=spec.evals_per_epoch,
        progress=spec.progress,
        description=label,
        checkpoint=policy,
        resume=saved is not None,
        context=context,
        precision=spec.run.precision,
        config_key=run_key(spec, run),
        config=run_config(spec, run),
        measure_noise=spec.run.measure_noise,
    )
    wall_seconds = time.perf_counter() - started
    env = environment(worker.device.describe(), list(spec.command))
    hook = spec.experiment.record_info
    info = hook(data, run.recipe) if hook is not None else None
    record = build_record(spec, run, result, env, data.info, wall_seconds, context.world_size, info)
    if result.evaluation_error is not None:
        record = unfinished_record(record, result.evaluation_error, result.checkpoint, spec.command)
    return record, result, wall_seconds


def write_run(spec: SweepSpec, run: PlannedRun, record: dict[str, Any], claim: Claim) -> bool:
    """Write a trained run's record and remove its checkpoint, unless its claim was lost (a
    worker that judged it stale took it over; that worker writes the record): False then.

    A run whose evaluation failed is not a result: its record goes to ``unfinished/`` and its
    checkpoint stays (``unfinished.py``). A record the output folder cannot take is rescued
    (``rescue.py``), its checkpoint kept, and ResultsRescued raised."""
    if not claim.check():
        return False
    pending = unfinished_path(spec.out_dir, run.name)
    if record["status"] == EVALUATION_FAILED:
        written = write_record(spec.out_dir, pending, record)
        if written.rescue is not None:
            raise ResultsRescued(spec.out_dir, written, f"record of unfinished run {run.name}")
        return True
    written = write_record(spec.out_dir, spec.out_dir / "runs" / run.name, record)
    if written.rescue is not None:
        raise ResultsRescued(spec.out_dir, written, f"record of {run.name}")
    checkpoint_path(spec, run).unlink(missing_ok=True)
    pending.unlink(missing_ok=True)
    return True


def shared_record(run: PlannedRun, source: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a run that is a copy of ``source`` (same recipe at k = 1)."""
    return {**source, "method": run.method, "same_run_as": run.same_run_as}


def describe_result(spec: SweepSpec, status: str, final: Mapping[str, Any], divergence) -> str:
    name = spec.experiment.metric_for(spec.preset)[0]
    metric = final.get(name)
    summary = f"{name}={metric:.4g}" if metric is not None else ""
    if divergence:
        summary += f" ({divergence['reason']})"
    return f"{status} {summary}"


def training_time_estimate(spec: SweepSpec, worker: Worker, runs: list[PlannedRun]) -> str:
    """One line before training starts: the runs' training time on this machine, from a few
    timed steps of the base batch's micro-batch (``estimate``; printed, never recorded)."""
    from . import estimate

    micro = spec.run.micro_batch_size or default_micro_batch_size(
        spec.experiment, min(run.batch_size for run in runs), worker.device
    )
    cost = estimate.measure_step_cost(
        spec.experiment,
        spec.base_recipe,
        spec.model_config,
        spec.data_config,
        worker.device,
        micro,
        train=worker.data.train,
        precision=spec.run.precision,
    )
    seconds = sum(
        cost.run_seconds(
            run.batch_size,
            date.total_steps(run.recipe, worker.data.train.steps_per_epoch(run.batch_size)),
            worker.context.world_size,
        )
        for run in runs
    )
    return (
        f"estimated training time of the {len(runs)} runs: about {format_duration(seconds)} on "
        f"this machine now (from {cost.steps_timed} timed steps of a micro-batch of {micro}; "
        "evaluation not included)"
    )


def run_sweep(
    spec: SweepSpec, log=print, shard: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """Train every planned run not already recorded, write the records, then the report.

    Under torchrun every rank trains its slice of each global batch; only rank 0 writes. Each run
    is claimed before it is trained (``claims``): a run another live worker is training is
    skipped. ``shard=(I, N)`` trains shard I of N only (``shard_runs``), continues a checkpoint
    made with the run's configuration without --resume (a killed shard's), and writes the report
    only when it finds every planned run recorded.
    """
    planned = plan_runs(spec)
    check_writable(spec.out_dir)
    worker = start_worker(spec)
    data, context = worker.data, worker.context
    if not context.is_main:
        log = _silent
    if context.is_main:
        for folder in ("runs", "checkpoints", UNFINISHED_FOLDER):
            remove_stale_temporaries(spec.out_dir / folder)
    selected = planned if shard is None else shard_runs(planned, *shard)
    existing = {run.name: read_record(spec.out_dir / "runs" / run.name) for run in selected}
    to_train = [
        run
        for run in selected
        if run.same_run_as is None
        and (existing[run.name] or {}).get("config_key") != run_key(spec, run)
    ]
    saved_checkpoints = {
        run.name: check_checkpoint(
            spec, run, checkpoint_path(spec, run), log, resume_matching=shard is not None
        )
        for run in to_train
    }
    shared = sum(run.same_run_as is not None for run in selected)
    log(
        f"{spec.experiment.name} / {spec.preset}: {len(planned)} planned runs"
        + (f", shard {shard[0]}/{shard[1]} of them: {len(selected)}" if shard else "")
        + f": {len(to_train)} to train, {len(selected) - len(to_train) - shared} already "
        f"recorded, {shared} shared with an identical run (k = 1); results in {spec.out_dir}"
    )
    if spec.estimate and to_train and spec.progress and context.is_main:
        log(training_time_estimate(spec, worker, to_train))
    sweep = SweepProgress(
        total=len(to_train),
        remaining_examples=sum(run_examples(run, data.train) for run in to_train),
    )
    written: dict[str, dict[str, Any]] = {}
    unfinished: list[dict[str, Any]] = []
    for run in selected:
        path = spec.out_dir / "runs" / run.name
        key = run_key(spec, run)
        record = existing[run.name]
        name = run_label(spec, run)
        if record is not None and record.get("config_key") == key:
            log(f"{name}: already recorded ({record['status']}), skipped")
            written[run.name] = record
            continue
        if run.same_run_as is not None:
            source = written.get(run.same_run_as)
            if source is None:
                log(f"{name}: its source {run.same_run_as} is not recorded yet, skipped")
                continue
            record = shared_record(run, source)
            if context.is_main:
                atomic_write_json(path, record)
            written[run.name] = record
            log(f"{name}: same recipe as {run.same_run_as} (k = 1), record shared")
            continue
        label = f"[{sweep.done + 1}/{sweep.total}] {name}"
        claim = claim_run(spec, run, context)
        if claim is None:
            holder = claim_holder(spec.out_dir / CLAIMS_FOLDER, run) if context.is_main else ""
            log(f"{name}: being trained by {holder}, skipped (a rerun picks it up)")
            continue
        try:
            if context.is_main:
                record = recorded(spec, run)  # recorded by another worker since the plan
            if context.broadcast_int(int(record is not None) if context.is_main else 0):
                written[run.name] = record or {}
                log(f"{name}: recorded by another worker meanwhile, skipped")
                continue
            record, result, wall_seconds = train_run(
                spec, run, worker, saved_checkpoints[run.name], label, log
            )
            if context.is_main and not write_run(spec, run, record, claim):
                log(f"{name}: its claim was taken over by another worker; not recorded here")
                continue
        finally:
            claim.release()
        sweep.finished(result.status, run_examples(run, data.train), wall_seconds)
        if result.status == EVALUATION_FAILED:
            unfinished.append(record)
            log(f"{label}: trained, but {record['evaluation_error']['split']} evaluation failed")
            continue
        written[run.name] = record
        took = format_duration(wall_seconds)
        summary = describe_result(spec, result.status, result.final, result.divergence)
        log(f"{label}: {summary} in {took} | {sweep.line()}")
    if context.is_main:
        if not any((spec.out_dir / "runs").glob("*.json")):
            log(
                f"no run is recorded in {spec.out_dir} yet, so no report is written: rerun the "
                "same command once the workers training them have finished"
            )
        elif shard is None:
            write_report(spec)
        else:
            write_report_when_complete(spec, planned, log)
    context.barrier()
    if unfinished:
        raise RunsUnfinished(spec.out_dir, unfinished)
    return list(written.values())


def write_report_when_complete(spec: SweepSpec, planned: list[PlannedRun], log=print) -> bool:
    """Write the report if every planned run is recorded (the last shard to finish finds that),
    under a claim so that two shards finishing together do not both write it."""
    missing = [run.name for run in planned if recorded(spec, run) is None]
    if missing:
        log(
            f"{len(missing)} planned runs are not recorded yet (other shards); the shard that "
            f"records the last one writes the report, or run: python reproduce/report.py "
            f"{spec.out_dir}"
        )
        return False
    claim = Claim(spec.out_dir / CLAIMS_FOLDER, "report")
    if not claim.acquire():
        return False
    try:
        write_report(spec)
    finally:
        claim.release()
    log(f"every planned run is recorded; report written in {spec.out_dir}")
    return True


def _silent(message: str) -> None:
    """The log of ranks other than 0."""


def write_report(spec: SweepSpec) -> dict[str, Path]:
    experiment = spec.experiment
    try:
        plan = preset_plan(experiment, spec.preset, spec.recipe_overrides)
    except ValueError:  # the preset's own runs cannot take these overrides: no coverage check
        plan = None
    return report.write_report(
        spec.out_dir,
        experiment.targets,
        experiment.claims,
        experiment.metric_for(spec.preset)[2],
        command=f"python reproduce/report.py {spec.out_dir}",
        plan=plan,
        divergence=experiment.divergence,
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
