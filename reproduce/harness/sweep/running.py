"""A batch-size sweep: every (method, batch size, seed) of an experiment, one record each.

Runs are planned (and every recipe validated) before anything is written. At the base batch
(k = 1) several methods resolve to the same recipe; such a run is trained once and its record is
written for each method, marked ``same_run_as``. A run whose record already exists with the same
configuration is not trained again, so an interrupted sweep resumes where it stopped.

The plan is planning.py's, the checks before training checks.py's, the claims claims.py's; this
module trains the runs (through the run layer's trainer) and writes their records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import date

from ..core.io import atomic_write_json, remove_stale_temporaries
from ..core.records import SCHEMA_VERSION, read_record
from ..run.checkpoint import CheckpointPolicy
from ..run.devices import Device, resolve_device
from ..run.distributed import DistributedContext, init_distributed
from ..run.experiment import DataBundle, proxy_record
from ..run.provenance import environment, git_state
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
from . import estimate
from .checks import check_checkpoint, check_data_size, check_writable, checkpoint_path
from .claims import CLAIMS_FOLDER, Claim, claim_holder, claim_run
from .planning import PlannedRun, plan_runs, run_config, run_examples, run_key, shard_runs
from .progress import SweepProgress, describe_result, format_duration, run_label
from .spec import Reports, SweepSpec


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


def recorded(spec: SweepSpec, run: PlannedRun) -> dict[str, Any] | None:
    """The run's record when one exists with this configuration, else None."""
    record = read_record(spec.out_dir / "runs" / run.name)
    return record if record is not None and record.get("config_key") == run_key(spec, run) else None


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


def training_time_estimate(spec: SweepSpec, worker: Worker, runs: list[PlannedRun]) -> str:
    """One line before training starts: the runs' training time on this machine, from a few
    timed steps of the base batch's micro-batch (``estimate``; printed, never recorded)."""
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
    spec: SweepSpec, log=print, shard: tuple[int, int] | None = None, *, reports: Reports
) -> list[dict[str, Any]]:
    """Train every planned run not already recorded, write the records, then the report
    (``reports.folder``).

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
            reports.folder(spec)
        else:
            report_when_complete(spec, planned, reports, log)
    context.barrier()
    if unfinished:
        raise RunsUnfinished(spec.out_dir, unfinished)
    return list(written.values())


def report_when_complete(
    spec: SweepSpec, planned: list[PlannedRun], reports: Reports, log=print
) -> bool:
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
        reports.folder(spec)
    finally:
        claim.release()
    log(f"every planned run is recorded; report written in {spec.out_dir}")
    return True


def _silent(message: str) -> None:
    """The log of ranks other than 0."""


def sweep_complete(spec: SweepSpec) -> bool:
    """Whether every planned run of ``spec`` is recorded (a shard then finds the report written)."""
    return all(recorded(spec, run) is not None for run in plan_runs(spec))
