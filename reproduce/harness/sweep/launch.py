"""Sweeps that outgrow one process: every planned run as its own job on an engine
that already exists, or one shard of the plan per process for the schedulers it does not cover.

- ``--launcher ray``: one Ray task per run, with a CPU (and, with ``--device cuda``, a GPU)
  request; Ray places the tasks on its cluster (``RAY_ADDRESS``) or on a local instance it
  starts by itself, and gives each task its own GPU through CUDA_VISIBLE_DEVICES.
- ``--launcher slurm``: one SLURM job per run through submitit, submitted as one job array whose
  parallelism SLURM itself limits (``--max-parallel``: the array's ``%N``).
- ``--launcher local``: submitit's local executor, the same jobs as local processes (what the
  tests run for the SLURM path); with ``--device cuda`` each of the ``--max-parallel`` slots has
  its own GPU.
- ``--shard I/N`` (``running.run_sweep``): the process trains shard I of N of the plan, for job
  arrays and Kubernetes indexed jobs.

The unit of work is a ``RunGroup``: a run and its copies at k = 1, so a copy is written once its
source is recorded. A job claims its run (``claims``), continues a checkpoint made with the run's
configuration (a killed job's), writes the record atomically and releases the claim. The driver
resubmits a job that failed (a killed worker, a preempted node) up to ``launch.max_retries``
times, shows a sweep-level progress line, and writes the report once, after the last job. A
budget preset runs in two phases: every budget's tuning runs, then every budget's sweep runs.
Engines are imported only here, and only when asked for (the ``cluster`` extra).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.io import atomic_write_json
from ..run.checkpoint import Preempted
from ..run.trainer import EVALUATION_FAILED
from ..run.unfinished import RunsUnfinished
from .budgets import (
    budget_spec,
    budgets_of,
    tune_budget,
    tuned_point,
    tunes_budgets,
    tuning_point_specs,
)
from .checks import check_checkpoint, check_data_size, check_writable, checkpoint_path
from .claims import CLAIMS_FOLDER, claim_holder, claim_run
from .planning import RunGroup, plan_runs, run_examples, run_groups
from .progress import SweepProgress, describe_result, format_duration, run_label
from .running import recorded, shared_record, start_worker, train_run, write_run
from .spec import Reports, SweepError, SweepSpec

LAUNCHERS = ("ray", "slurm", "local")
CLUSTER_EXTRA = 'pip install -e ".[cluster]"'


class LaunchError(ValueError):
    """A launcher that cannot be used here (its engine is not installed, no SLURM): exit 2."""


@dataclass(frozen=True)
class LaunchSettings:
    """How the runs are spread: ``--launcher``, ``--max-parallel`` and ``--set launch.KEY``."""

    launcher: str = "ray"
    max_parallel: int | None = None  # None: as many as the engine's resources allow
    cpus_per_run: int = 1  # CPU cores (and torch threads) of one run
    max_retries: int = 2  # resubmissions of a failed job (a killed worker, a preempted node)
    poll_seconds: float = 5.0  # how often the driver looks at its jobs
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_time_minutes: int = 24 * 60  # the job's time limit; a run that hits it resumes
    gpus_per_run: int = 0  # set from --device: 1 with cuda (one run on several GPUs: README)


#: The keys ``--set launch.KEY`` may set (their types are LaunchSettings').
LAUNCH_KEYS = (
    "cpus_per_run",
    "max_retries",
    "poll_seconds",
    "slurm_partition",
    "slurm_account",
    "slurm_time_minutes",
)


@dataclass(frozen=True)
class Job:
    """One job: a group of runs of the sweep ``spec`` (paths made absolute for other hosts)."""

    spec: SweepSpec
    group: RunGroup
    examples: float = 0.0  # what its run trains on, for the ETA
    attempt: int = 1

    @property
    def name(self) -> str:
        return run_label(self.spec, self.group.source)


def absolute_spec(spec: SweepSpec) -> SweepSpec:
    """The spec a job receives: a worker on another host or in another folder (Ray's workers,
    SLURM's jobs) finds the output and data folders by their absolute paths."""
    return dataclasses.replace(
        spec,
        out_dir=Path(spec.out_dir).absolute(),
        data_dir=Path(spec.data_dir).absolute() if spec.data_dir is not None else None,
    )


def run_job(spec: SweepSpec, group: RunGroup, cpus: int = 1, poll_seconds: float = 5.0) -> dict:
    """Train ``group``'s run unless it is recorded, then write its copies; what the driver shows.

    Runs in the job's own process (a Ray task, a SLURM or local job). The run is claimed first;
    while another live worker holds it (a previous attempt still running elsewhere), the job
    waits for that worker's record or for its claim to go stale. A checkpoint made with the
    run's configuration is continued (a killed attempt's).
    """
    import torch

    torch.set_num_threads(cpus)  # as many threads as the job has cores, on every engine
    log = _flushed_print
    worker = start_worker(spec)
    run = group.source
    label = run_label(spec, run)
    outcome: dict[str, Any] = {"run": run.name, "trained": False}
    waiting_for = None
    while True:
        record = recorded(spec, run)
        if record is not None:
            break
        claim = claim_run(spec, run, worker.context)
        if claim is None:
            holder = claim_holder(spec.out_dir / CLAIMS_FOLDER, run)
            if holder != waiting_for:
                log(f"{label}: being trained by {holder}; waiting for its record")
                waiting_for = holder
            time.sleep(poll_seconds)
            continue
        try:
            record = recorded(spec, run)
            if record is not None:
                break
            path = checkpoint_path(spec, run)
            saved = check_checkpoint(spec, run, path, log, resume_matching=True)
            record, _, wall_seconds = train_run(spec, run, worker, saved, label, log)
            if not write_run(spec, run, record, claim):
                log(f"{label}: its claim was taken over by another worker; waiting for it")
                record = None
                continue
            if record["status"] == EVALUATION_FAILED:  # trained; its state and record are kept
                raise RunsUnfinished(spec.out_dir, [record])
            outcome.update(
                trained=True,
                wall_seconds=wall_seconds,
                examples=run_examples(run, worker.data.train),
            )
            break
        finally:
            claim.release()
    for copy in group.copies:
        if recorded(spec, copy) is None:
            atomic_write_json(spec.out_dir / "runs" / copy.name, shared_record(copy, record))
    outcome.update(
        status=record["status"],
        final=record["final"],
        divergence=record["divergence"],
        resumed_from_step=record.get("resumed_from_step"),
    )
    return outcome


def _flushed_print(message: str) -> None:
    print(message, flush=True)


class Engine:
    """The few operations the driver needs from an engine."""

    def submit(self, jobs: Sequence[Job], settings: LaunchSettings) -> list[Any]:
        raise NotImplementedError

    def ready(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        """The handles whose jobs have ended, waiting up to ``timeout`` for one."""
        raise NotImplementedError

    def result(self, handle: Any) -> dict:
        """The job's outcome; raises what the job raised (or why it died)."""
        raise NotImplementedError

    def running(self, handles: Sequence[Any]) -> int:
        return len(handles)

    def close(self) -> None:
        pass


class RayEngine(Engine):
    """Ray tasks: ``RAY_ADDRESS`` names a running cluster; without it a local instance starts."""

    def __init__(self, settings: LaunchSettings) -> None:
        try:
            import ray
        except ImportError:
            raise LaunchError(
                f"--launcher ray: Ray is not installed; install the cluster extra: {CLUSTER_EXTRA}"
            ) from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            address = os.environ.get("RAY_ADDRESS") or None
            try:
                ray.init(address=address, include_dashboard=False, configure_logging=False)
            except Exception as error:  # Ray raises several types for a cluster it cannot reach
                where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray"
                raise LaunchError(
                    f"--launcher ray: could not start or reach {where} ({error})"
                ) from None
        self.task = ray.remote(run_job).options(
            num_cpus=settings.cpus_per_run,
            num_gpus=settings.gpus_per_run,
            max_retries=0,  # the driver resubmits, the same way for every engine
        )

    def capacity(self, settings: LaunchSettings) -> int:
        """Runs the cluster can hold at once, from its resources and a run's request."""
        resources = self.ray.cluster_resources()
        slots = int(resources.get("CPU", 1) // settings.cpus_per_run)
        if settings.gpus_per_run:
            slots = min(slots, int(resources.get("GPU", 0) // settings.gpus_per_run))
        return max(1, slots)

    def submit(self, jobs: Sequence[Job], settings: LaunchSettings) -> list[Any]:
        return [
            self.task.remote(job.spec, job.group, settings.cpus_per_run, settings.poll_seconds)
            for job in jobs
        ]

    def ready(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        done, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        if done:  # and every other one that has ended meanwhile
            more, _ = self.ray.wait(list(handles), num_returns=len(handles), timeout=0)
            done = list(dict.fromkeys([*done, *more]))
        return done

    def result(self, handle: Any) -> dict:
        return self.ray.get(handle)

    def close(self) -> None:
        if self.started:  # a local instance this driver started, or its connection
            self.ray.shutdown()


class SubmititEngine(Engine):
    """submitit: SLURM jobs (one array per submission) or local processes."""

    def __init__(self, settings: LaunchSettings, folder: Path, job_name: str) -> None:
        try:
            import submitit
        except ImportError:
            raise LaunchError(
                f"--launcher {settings.launcher}: submitit is not installed; install the cluster "
                f"extra: {CLUSTER_EXTRA}"
            ) from None
        self.submitit = submitit
        self.settings = settings
        self.slots: dict[Any, int] = {}  # local: the GPU slot of each running job
        parameters: dict[str, Any] = {"timeout_min": settings.slurm_time_minutes}
        if settings.launcher == "slurm":
            missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
            if missing:
                raise LaunchError(
                    f"--launcher slurm: {' and '.join(missing)} not on PATH; run the driver on a "
                    "SLURM login node (or use --launcher local or ray on one machine)"
                )
            self.executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
            parameters.update(
                name=job_name,
                cpus_per_task=settings.cpus_per_run,
                slurm_array_parallelism=settings.max_parallel or 10_000,
            )  # at its time limit SLURM sends SIGTERM: the run checkpoints, the job is resubmitted
            if settings.gpus_per_run:
                parameters["gpus_per_node"] = settings.gpus_per_run
            if settings.slurm_partition:
                parameters["slurm_partition"] = settings.slurm_partition
            if settings.slurm_account:
                parameters["slurm_account"] = settings.slurm_account
        else:
            self.executor = submitit.LocalExecutor(folder=folder)
            # submitit's local executor makes every job's CUDA_VISIBLE_DEVICES the first
            # gpus_per_node GPUs unless told which: each slot gets its own below
        self.executor.update_parameters(**parameters)

    def submit(self, jobs: Sequence[Job], settings: LaunchSettings) -> list[Any]:
        def arguments(job: Job) -> tuple:
            return (run_job, job.spec, job.group, settings.cpus_per_run, settings.poll_seconds)

        if settings.launcher == "slurm":
            with self.executor.batch():  # one job array
                handles = [self.executor.submit(*arguments(job)) for job in jobs]
            return handles
        handles = []
        for job in jobs:
            slot = None
            if settings.gpus_per_run:
                taken = set(self.slots.values())
                slot = min(s for s in range(len(taken) + 1) if s not in taken)
                first = slot * settings.gpus_per_run
                self.executor.update_parameters(
                    gpus_per_node=settings.gpus_per_run,
                    visible_gpus=tuple(range(first, first + settings.gpus_per_run)),
                )
            handle = self.executor.submit(*arguments(job))
            # submitit waits this long for a result file that a network file system may show
            # late; a local job's is on this machine's disk at once (a killed job has none)
            handle._results_timeout_s = 1
            if slot is not None:
                self.slots[handle] = slot
            handles.append(handle)
        return handles

    def ready(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            done = [handle for handle in handles if handle.done()]
            if done or time.monotonic() >= deadline:
                for handle in done:
                    self.slots.pop(handle, None)
                return done
            time.sleep(min(0.2, timeout))

    def result(self, handle: Any) -> dict:
        return handle.result()

    def running(self, handles: Sequence[Any]) -> int:
        return sum(handle.state == "RUNNING" for handle in handles)


def open_engine(settings: LaunchSettings, out_dir: Path, job_name: str) -> Engine:
    if settings.launcher == "ray":
        return RayEngine(settings)
    return SubmititEngine(settings, Path(out_dir).absolute() / "jobs", job_name)


@dataclass
class PhaseResult:
    """What a phase of jobs ended with: runs that failed for good, with why."""

    failed: dict[str, str]


def jobs_of(spec: SweepSpec, log=print) -> list[Job]:
    """The jobs of ``spec``'s sweep that have work left. Copies
    whose source is recorded are written here; checkpoints are checked now (a corrupt one is set
    aside; with --resume, one of another configuration is an error), before any job starts."""
    planned = plan_runs(spec)
    data = spec.experiment.build_data(spec.data_source, spec.data_dir, spec.data_config)
    check_data_size(spec, data.train)
    jobs = []
    for group in run_groups(planned):
        source = recorded(spec, group.source)
        if source is None:
            check_checkpoint(
                spec, group.source, checkpoint_path(spec, group.source), log, resume_matching=True
            )
            jobs.append(Job(absolute_spec(spec), group, run_examples(group.source, data.train)))
            continue
        for copy in group.copies:
            if recorded(spec, copy) is None:
                atomic_write_json(spec.out_dir / "runs" / copy.name, shared_record(copy, source))
    return jobs


def run_phase(engine: Engine, jobs: list[Job], settings: LaunchSettings, log=print) -> PhaseResult:
    """Submit ``jobs`` (at most ``max_parallel`` at once where the engine does not limit that
    itself), resubmit the failed ones, and log a sweep line as each ends."""
    limit = None if settings.launcher == "slurm" else settings.max_parallel
    sweep = SweepProgress(total=len(jobs), remaining_examples=sum(job.examples for job in jobs))
    sweep.parallel = settings.max_parallel or len(jobs) or 1
    waiting = list(jobs)
    in_flight: dict[Any, Job] = {}
    failed: dict[str, str] = {}
    while waiting or in_flight:
        room = len(waiting) if limit is None else max(0, limit - len(in_flight))
        if room and waiting:
            batch, waiting = waiting[:room], waiting[room:]
            for handle, job in zip(engine.submit(batch, settings), batch, strict=True):
                in_flight[handle] = job
            sweep.running = engine.running(list(in_flight))
        ended = engine.ready(list(in_flight), settings.poll_seconds)
        for handle in ended:
            job = in_flight.pop(handle)
            try:
                outcome = engine.result(handle)
            except Exception as error:
                reason = _failure(error)
                if isinstance(_cause(error), SweepError) or job.attempt > settings.max_retries:
                    failed[job.group.source.name] = reason
                    sweep.gave_up(job.examples)
                    sweep.running = engine.running(list(in_flight))
                    log(f"{job.name}: failed ({reason}) | {sweep.line()}")
                else:
                    log(f"{job.name}: job ended without a record ({reason}); resubmitted")
                    waiting.insert(0, dataclasses.replace(job, attempt=job.attempt + 1))
                continue
            sweep.running = engine.running(list(in_flight))
            run = job.group.source
            if outcome.get("trained"):
                sweep.finished(outcome["status"], outcome["examples"], outcome["wall_seconds"])
                took = format_duration(outcome["wall_seconds"])
                summary = describe_result(
                    job.spec, outcome["status"], outcome["final"], outcome["divergence"]
                )
                resumed = outcome.get("resumed_from_step")
                if resumed is not None:
                    summary += f" (resumed at step {resumed})"
                log(f"[{sweep.done}/{sweep.total}] {run_label(job.spec, run)}: {summary} in {took}"
                    f" | {sweep.line()}")  # fmt: skip
            else:
                sweep.total -= 1
                sweep.remaining_examples -= job.examples
                log(f"{run_label(job.spec, run)}: recorded by another worker | {sweep.line()}")
    return PhaseResult(failed)


def _cause(error: BaseException) -> BaseException:
    """The exception a job raised, unwrapped from the engine's wrapper where it has one."""
    cause = getattr(error, "cause", None)  # ray.exceptions.RayTaskError
    return cause if isinstance(cause, BaseException) else error


def _failure(error: BaseException) -> str:
    """Why a job failed, in a line: the job's own exception, or that its process died."""
    cause = _cause(error)
    if isinstance(cause, Preempted):
        return str(cause)
    text = str(cause).strip().splitlines()
    if type(cause).__name__ == "UncompletedJobError":  # submitit: the process left no result
        return f"its process ended without a result, killed? {' '.join(text[:2])}"
    if type(cause).__name__ in ("WorkerCrashedError", "NodeDiedError"):  # ray
        return f"its worker died: {text[0] if text else type(cause).__name__}"
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def launch_sweep(
    spec: SweepSpec,
    settings: LaunchSettings,
    log=print,
    engine_factory: Callable[..., Engine] = open_engine,
    *,
    reports: Reports,
) -> PhaseResult:
    """Run ``spec``'s sweep (every budget's, for a budget preset) as jobs on the engine, then
    write the report(s) once (``reports``); the failed runs are returned (the report covers what
    is recorded, and says what is missing)."""
    check_writable(spec.out_dir)
    budgets = spec.experiment.presets[spec.preset].budgets
    if budgets and tunes_budgets(spec):
        tuning = [
            point for epochs in budgets_of(spec) for point in tuning_point_specs(spec, epochs)
        ]
        sweeps: list[SweepSpec] = []
    elif budgets:  # each budget with the preset's own base recipe: no tuning phase
        tuning, sweeps = [], [budget_spec(spec, epochs, {}) for epochs in budgets_of(spec)]
    else:
        tuning, sweeps = [], [spec]
    engine = engine_factory(settings, spec.out_dir, f"date-{spec.experiment.name}")
    try:
        if settings.max_parallel is None and isinstance(engine, RayEngine):
            settings = dataclasses.replace(settings, max_parallel=engine.capacity(settings))
        if tuning:
            log(f"phase 1 of 2: tuning runs of every budget ({len(tuning)} grid points)")
            result = _run_specs(engine, tuning, settings, log)
            if result.failed:
                return result
            for epochs in budgets_of(spec):
                # every point is recorded: this writes the tuning's summary and reports
                folder = tune_budget(spec, epochs, log=_quiet, reports=reports)
                sweeps.append(budget_spec(spec, epochs, tuned_point(folder)))
            log("phase 2 of 2: the sweep at every budget with its tuned base recipe")
        result = _run_specs(engine, sweeps, settings, log)
    finally:
        engine.close()
    for sweep_spec in sweeps:
        reports.folder(sweep_spec)
    if budgets:
        reports.budgets(spec)
    return result


def _run_specs(
    engine: Engine, specs: list[SweepSpec], settings: LaunchSettings, log=print
) -> PhaseResult:
    jobs = [job for spec in specs for job in jobs_of(spec, log)]
    log(
        f"{len(jobs)} runs to train as {settings.launcher} jobs"
        + (f", at most {settings.max_parallel} at once" if settings.max_parallel else "")
    )
    return run_phase(engine, jobs, settings, log)


def _quiet(message: str) -> None:
    """The log of the driver's tuning summaries (they train nothing)."""


def check_not_under_torchrun() -> None:
    """A launcher's driver starts the runs' processes itself: refuse it inside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise LaunchError("--launcher does not run under torchrun; start the driver directly")
