"""The one training loop every experiment runs through.

The global batch never depends on memory: it is computed as micro-batches whose gradients are
summed, then divided by the number of loss items, which gives the same update as one big batch
(up to float rounding). The learning rate is a pure function of the step (``date.lr_at``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from date import DateScheduler, Recipe, build_optimizer, total_steps

from ..core.divergence import divergence_check, final_metric_check
from ..core.targets import meets
from .checkpoint import (
    CheckpointPolicy,
    load_checkpoint,
    restore_rng_states,
    rng_states,
)
from .devices import Device
from .distributed import DistributedContext
from .experiment import Batch, DataBundle, Experiment
from .noise_probe import NoiseProbe
from .provenance import REPO_ROOT

EVAL_BATCH_SIZE = 1024
PRECISIONS = ("fp32", "bf16")


def seed_everything(seed: int) -> None:
    """Seed every generator a run draws from (model init, dropout, data order is seeded apart)."""
    import random

    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def evaluation_steps(steps_per_epoch: float, evals_per_epoch: float, last_step: int) -> list[int]:
    """Step counts after which to evaluate: every 1/evals_per_epoch epochs, and at the end."""
    interval = steps_per_epoch / evals_per_epoch
    steps = {last_step}
    index = 1
    while round(index * interval) < last_step:
        steps.add(max(1, round(index * interval)))
        index += 1
    return sorted(steps)


def accumulate_gradients(
    experiment: Experiment,
    model: nn.Module,
    batch: Batch,
    micro_batch_size: int,
    states: dict[int, Any],
    device: Device,
    precision: str = "fp32",
    noise: NoiseProbe | None = None,
) -> tuple[float, int]:
    """Forward and backward over the micro-batches of ``batch``; gradients end up as the mean over
    all loss items of the batch. Returns (mean loss, number of items).

    Under DistributedDataParallel, gradients are all-reduced (averaged over ranks) only on the last
    micro-batch, which gives the mean over the global batch when every rank holds as many items.
    A ``noise`` probe takes the gradient norms it needs on the way (``noise_probe.py``).
    """
    loss_total: torch.Tensor | float = 0.0
    items = 0
    if batch.reset_state:
        states.clear()
    micro_batches = batch.split(micro_batch_size)
    for index, micro_batch in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        distributed = hasattr(model, "no_sync")
        sync = model.no_sync() if distributed and not last else contextlib.nullcontext()
        with sync:
            with autocast(device, precision):
                loss_sum, count, states[index] = experiment.loss(
                    model, micro_batch.to(device.torch_device), states.get(index)
                )
            # a bf16 loss is summed and back-propagated in fp32; fp32 and fp64 stay as they are
            loss_sum = loss_sum.to(torch.promote_types(loss_sum.dtype, torch.float32))
            loss_sum.backward()
        if noise is not None and index == 0 and not last:
            noise.first_micro_batch(model.parameters(), count, micro_batch.size)
        device.mark_step()  # XLA: one graph per micro-batch, not one growing with accumulation
        loss_total = loss_total + loss_sum.detach()
        items += count
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.div_(items)
    if noise is not None:
        noise.accumulated(model.parameters(), items, batch.size)
    return float(loss_total) / items, items


def autocast(device: Device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the forward pass when asked; parameters (master weights) stay fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        device_type = "cpu" if device.kind == "cpu" else "cuda" if device.kind == "cuda" else "xla"
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    raise ValueError(f"precision {precision!r}: valid choices: {', '.join(PRECISIONS)}")


#: ``Experiment.micro_batch_limits["cuda"]`` is written for a device with this much memory (a
#: 16 GiB V100 or T4); a larger or smaller GPU scales it by a power of two (micro_batch_limit).
CUDA_REFERENCE_MEMORY = 16 * 2**30


def micro_batch_limit(experiment: Experiment, device: Device) -> int:
    """The largest micro-batch for ``device``: the experiment's limit for the device kind, scaled
    on CUDA by the device's memory (a power of two relative to CUDA_REFERENCE_MEMORY)."""
    limits = experiment.micro_batch_limits
    limit = int(limits.get(device.kind, limits["cpu"]))
    if device.kind == "cuda":
        memory = torch.cuda.get_device_properties(device.torch_device).total_memory
        exponent = max(-4, min(4, math.floor(math.log2(memory / CUDA_REFERENCE_MEMORY))))
        limit = max(1, int(limit * 2.0**exponent))
    return limit


def default_micro_batch_size(experiment: Experiment, per_device_batch: int, device: Device) -> int:
    """The micro-batch a run uses unless told otherwise: the largest divisor of the per-device
    batch that is at most ``micro_batch_limit``. A function of the configuration and the device
    only (never of a stopwatch), so the same command splits its batches, and rounds its sums, the
    same way every time. A divisor keeps every micro-batch the same size."""
    limit = micro_batch_limit(experiment, device)
    if per_device_batch <= limit:
        return per_device_batch
    return max(d for d in range(1, limit + 1) if per_device_batch % d == 0)


def measure_micro_batch_size(
    experiment: Experiment,
    model_config: Mapping[str, Any],
    data: DataBundle,
    batch_size: int,
    device: Device,
    cache: dict[tuple, dict[int, float]] | None = None,
) -> int:
    """Opt-in (``--set run.measure_micro_batch=true``): the micro-batch size (among the
    experiment's candidates up to ``batch_size``) with the highest measured training throughput
    on this device. Timings vary with the machine's load, so two runs of the same command may
    choose differently; the record says which size each step range used.

    Measured on a throw-away copy of the model under a forked RNG, so the run itself is unchanged.
    """
    candidates = [
        c for c in experiment.micro_batch_candidates if c <= batch_size and batch_size % c == 0
    ]
    if not candidates or batch_size <= min(candidates):
        return batch_size
    if device.kind == "tpu":
        # Every size would compile its own XLA graphs (tens of seconds each): not measured.
        return default_micro_batch_size(experiment, batch_size, device)
    key = (experiment.name, repr(sorted(model_config.items())), str(device.torch_device))
    timings = cache.setdefault(key, {}) if cache is not None else {}
    missing = [c for c in candidates if c not in timings]
    if missing:
        with torch.random.fork_rng(devices=[]):
            model = experiment.build_model(model_config).to(device.torch_device)
            largest = max(missing)
            batch = next(data.train.stream(largest, seed=0))
            for size in missing:
                micro_batch = batch.split(size)[0].to(device.torch_device)
                seconds = []
                for _ in range(3):
                    device.synchronize()
                    start = time.perf_counter()
                    loss_sum, _, _ = experiment.loss(model, micro_batch, None)
                    loss_sum.backward()
                    device.synchronize()
                    seconds.append(time.perf_counter() - start)
                model.zero_grad(set_to_none=True)
                timings[size] = min(seconds[1:]) / micro_batch.size
    return min(candidates, key=lambda size: timings[size])


@dataclass
class Progress:
    """What a run has produced so far; saved in checkpoints so a resumed run continues it.

    ``micro_batches`` lists the micro-batch of every step range, ``{"from_step", "size"}``: a run
    resumed with another micro-batch (only when the user sets one) has two entries.
    """

    step: int = 0
    train_seconds: float = 0.0
    curves: dict[str, list[float]] = field(
        default_factory=lambda: {"step": [], "lr": [], "loss": []}
    )
    evals: list[dict[str, Any]] = field(default_factory=list)
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    micro_batches: list[dict[str, int]] = field(default_factory=list)
    #: How the gradient noise curves were measured (``noise_probe.py``); None without them.
    gradient_noise: dict[str, Any] | None = None

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def micro_batch_size(self) -> int | None:
        """The micro-batch of the latest step range."""
        return self.micro_batches[-1]["size"] if self.micro_batches else None


@dataclass
class RunResult:
    """What a training run produced; the sweep turns it into a record."""

    status: str  # "ok", "diverged" or "evaluation_failed" (EVALUATION_FAILED)
    final: dict[str, float]
    progress: Progress
    total_steps: int
    steps_per_epoch: float
    model_parameters: int
    accumulation_steps: int
    divergence: dict[str, Any] | None = None  # {"step", "reason"} when status is "diverged"
    resumed_from_step: int | None = None
    #: When an evaluation raised (status EVALUATION_FAILED): {"split", "step", "error", "where"}.
    evaluation_error: dict[str, Any] | None = None
    #: Where the training state was last saved (None without a checkpoint policy).
    checkpoint: str | None = None


#: The status of a run whose training state is saved but one of whose evaluations raised: not a
#: result (never written to runs/); its checkpoint finishes it without retraining.
EVALUATION_FAILED = "evaluation_failed"


class EvaluationError(Exception):
    """An evaluation raised; ``summary`` says which, where and why, in one line's fields."""

    def __init__(self, split: str, step: int, error: BaseException) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        where = ""
        if frames:
            path = Path(frames[-1].filename)
            with contextlib.suppress(ValueError):  # shown relative to the repository
                path = path.relative_to(REPO_ROOT)
            where = f"{path.as_posix()}:{frames[-1].lineno}"
        message = str(error).splitlines()[0] if str(error) else ""
        self.summary = {
            "split": split,
            "step": step,
            "error": f"{type(error).__name__}: {message}".rstrip(": "),
            "where": where,
        }
        super().__init__(f"{split} evaluation after step {step}: {self.summary['error']}")


def train(
    experiment: Experiment,
    recipe: Recipe,
    data: DataBundle,
    model_config: Mapping[str, Any],
    seed: int,
    device: Device,
    micro_batch_size: int,
    evals_per_epoch: float = 1.0,
    progress: bool = True,
    description: str = "",
    checkpoint: CheckpointPolicy | None = None,
    resume: bool = False,
    context: DistributedContext | None = None,
    precision: str = "fp32",
    config_key: str | None = None,
    config: Mapping[str, Any] | None = None,
    measure_noise: bool = True,
) -> RunResult:
    """Train ``experiment``'s model with ``recipe`` and return curves and metrics.

    ``recipe.batch_size`` is the global batch; under torchrun each of the ``context.world_size``
    ranks computes its slice of it. The run stops with status ``diverged`` as the experiment's
    ``Divergence`` rule says (a non-finite loss, a loss far above its start); a final metric
    far worse than chance is recorded as ``diverged`` too. With a ``checkpoint`` policy the run
    saves its full state, tagged with ``config_key``, as the policy says (and on SIGTERM or SIGINT,
    then raises Preempted), and always once every step is done, before any evaluation of the
    trained model; ``resume`` continues from that checkpoint (one of a trained model only
    evaluates it). An evaluation that raises ends the run with status ``evaluation_failed``, its
    state on disk (the evaluation it owes comes first when it is resumed). ``measure_noise``
    records the gradient noise scale in the curves where a step has two gradient sizes
    (``noise_probe.py``).
    """
    context = context or DistributedContext()
    checkpoint = checkpoint or CheckpointPolicy(path=None)
    with context.exclusive():  # XLA replicas that are threads of one process share the RNG
        seed_everything(seed)
        module = experiment.build_model(model_config).to(device.torch_device)
    module.train()
    model = context.data_parallel(module, device)
    optimizer = build_optimizer(module, recipe)
    steps_per_epoch = data.train.steps_per_epoch(recipe.batch_size)
    last_step = total_steps(recipe, steps_per_epoch)
    scheduler = DateScheduler(optimizer, recipe, steps_per_epoch)
    eval_at = set(evaluation_steps(steps_per_epoch, evals_per_epoch, last_step))
    target = experiment.time_to_target
    states: dict[int, Any] = {}
    run = Progress()

    saved = load_checkpoint(checkpoint.path) if resume and checkpoint.path else None
    if saved is not None:
        module.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        restore_rng_states(saved["rng"])
        states = saved["carried_states"]
        run = Progress(**saved["progress"])
    if run.micro_batch_size != micro_batch_size:
        run.micro_batches.append({"from_step": run.step, "size": micro_batch_size})
    noise = NoiseProbe.for_run(model, context, run) if measure_noise else None

    divergence: dict[str, Any] | None = None
    stream = data.train.stream(
        recipe.batch_size, seed, start_step=run.step, shard=(context.rank, context.world_size)
    )
    show_bar = progress and context.is_main and sys.stderr.isatty()
    # Without a terminal (nohup, CI, a batch scheduler's log) there is no bar: a line per
    # evaluation instead, so a long run's log shows where it is and how it is doing.
    log_evals = progress and context.is_main and not show_bar
    bar = tqdm(
        total=last_step,
        initial=run.step,
        desc=description,
        disable=not show_bar,
        leave=False,
        dynamic_ncols=True,
    )
    saved_at = str(checkpoint.path) if saved is not None else None

    def save_state(trained: bool, rng: dict[str, Any] | None = None) -> None:
        """Write the full training state (``trained``: every step is done, only evaluations
        are left), on the main rank, retried and rescued as the policy says."""
        nonlocal saved_at
        if checkpoint.path is None:
            return
        if noise is not None:
            noise.flush()
        if context.is_main:
            state = {
                "config_key": config_key,
                "config": dict(config or {}),
                "trained": trained,
                "model": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng or rng_states(),
                "carried_states": states,
                "progress": run.to_state(),
            }
            saved_at = str(checkpoint.save(state))
        context.barrier()

    def evaluate(split_name: str, split: Any, step: int) -> dict[str, float]:
        """The metrics of ``split``; EvaluationError when the evaluation raises (on any rank)."""
        failure: Exception | None = None
        metrics: dict[str, float] = {}
        try:
            metrics = run_evaluation(experiment, module, split, device)
        except Exception as error:  # whatever it is, the training state must survive it
            failure = error
        if context.any(failure is not None):
            raise EvaluationError(
                split_name, step, failure or RuntimeError("another rank's evaluation failed")
            )
        return metrics

    def validate(done: int, loss: float, lr: float) -> dict[str, Any] | None:
        """The validation evaluation after step ``done``: recorded in ``run``; the divergence
        it shows (a metric that is not finite), or None."""
        if noise is not None:
            noise.flush()
        metrics = evaluate("valid", data.valid, done)
        run.evals.append(
            {
                "step": done,
                "epoch": done / steps_per_epoch,
                "seconds": run.train_seconds,
                "split": "valid",
                "metrics": metrics,
            }
        )
        value = metrics.get(target.metric) if target else None
        if (
            run.steps_to_target is None
            and target is not None
            and target.value is not None
            and value is not None
            and meets(value, target.value, target.mode)
        ):
            run.steps_to_target, run.seconds_to_target = done, run.train_seconds
        if log_evals:
            shown = " ".join(f"{key}={value:.4g}" for key, value in metrics.items())
            speed = done * recipe.batch_size / run.train_seconds if run.train_seconds else 0.0
            print(
                f"{description} step {done}/{last_step} epoch {done / steps_per_epoch:.2f}"
                f" lr {lr:.3g} train loss {loss:.4g} | valid {shown} | {speed:.0f} examples/s",
                file=sys.stderr,
                flush=True,
            )
        bad = [key for key, value in metrics.items() if not math.isfinite(value)]
        if bad:
            return {
                "step": done - 1,
                "reason": f"validation {', '.join(bad)} not finite after step {done - 1}",
            }
        return None

    final: dict[str, float] = {}
    evaluation_error: dict[str, Any] | None = None
    rng_before_evaluation: dict[str, Any] | None = None
    try:
        with checkpoint:
            # A run stopped by a failed evaluation owes it: its checkpoint was written after the
            # step and before that evaluation, so the evaluation comes first (as it would have).
            owed = run.step > 0 and run.step in eval_at
            if owed and not any(entry["step"] == run.step for entry in run.evals):
                rng_before_evaluation = rng_states()
                divergence = validate(run.step, run.curves["loss"][-1], run.curves["lr"][-1])
            while divergence is None and run.step < last_step:
                step = run.step
                started = time.perf_counter()
                lr = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get(
                    "lr_scale", 1.0
                )
                batch = next(stream)
                optimizer.zero_grad(set_to_none=True)
                loss, _ = accumulate_gradients(
                    experiment, model, batch, micro_batch_size, states, device, precision, noise
                )
                context.reduce_gradients(module)
                if noise is not None:
                    noise.reduced(module.parameters(), batch.size, step)
                loss = context.mean(loss)
                run.curves["step"].append(step)
                run.curves["lr"].append(lr)
                run.curves["loss"].append(loss)
                divergence = divergence_check(experiment.divergence, run.curves["loss"], step)
                if divergence is not None:
                    break
                if recipe.grad_clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), recipe.grad_clip_norm)
                optimizer.step()
                scheduler.step()
                device.mark_step()
                run.step = done = step + 1
                run.train_seconds += time.perf_counter() - started
                bar.update(1)
                examples = done * recipe.batch_size
                bar.set_postfix(
                    lr=f"{lr:.3g}", loss=f"{loss:.3f}", ex_s=f"{examples / run.train_seconds:.0f}"
                )
                if done == last_step:
                    # Trained: the state goes to disk before any evaluation can fail.
                    save_state(trained=True)
                    checkpoint.saved()
                if done in eval_at:
                    rng_before_evaluation = rng_states()
                    divergence = validate(done, loss, lr)
                    if divergence is not None:
                        break
                if done < last_step and context.any(checkpoint.due(done)):
                    save_state(trained=False)
                    checkpoint.saved()
        if divergence is None:
            final = evaluate("test", data.test, run.step)
            divergence = final_metric_check(experiment, final, run.step, model_config)
    except EvaluationError as error:
        evaluation_error = error.summary
        if run.step < last_step:  # the trained state is on disk already
            # the state before the evaluation, which a resumed run then evaluates first
            save_state(trained=False, rng=rng_before_evaluation)
        final, divergence = {}, None
    if noise is not None:
        noise.flush()
    bar.close()
    status = "ok" if divergence is None else "diverged"
    return RunResult(
        status=EVALUATION_FAILED if evaluation_error is not None else status,
        final=final,
        progress=run,
        total_steps=last_step,
        steps_per_epoch=steps_per_epoch,
        model_parameters=count_parameters(module),
        accumulation_steps=math.ceil(recipe.batch_size / context.world_size / micro_batch_size),
        divergence=divergence,
        resumed_from_step=saved["progress"]["step"] if saved is not None else None,
        evaluation_error=evaluation_error,
        checkpoint=saved_at,
    )


def run_evaluation(
    experiment: Experiment, model: nn.Module, split: Any, device: Device
) -> dict[str, float]:
    model.eval()
    try:
        with torch.no_grad():
            metrics = experiment.evaluate(model, split, device.torch_device, EVAL_BATCH_SIZE)
    finally:
        model.train()
    return {name: float(value) for name, value in metrics.items()}
