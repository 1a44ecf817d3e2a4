"""The gradient noise scale, measured inside the training loop at no extra forward or backward.

``date.noise`` needs the squared norm of the gradient averaged over two batch sizes at the same
parameters (McCandlish et al. 2018, arXiv 1812.06162, Appendix A.1). The trainer already holds
two such gradients in every step that has more than one gradient in flight:

- one process, several micro-batches: right after the first micro-batch's backward the
  accumulated gradient is that micro-batch's alone (summed over its items); at the end of the
  step it is the whole batch's. Small = the first micro-batch, big = the batch.
- several ranks (torchrun's DDP, or XLA replicas): each rank's gradient over its share of the
  batch before the all-reduce, and the all-reduced gradient over the global batch after it (the
  no-overhead data-parallel measurement of the paper's Appendix A.1). Small = rank's share (batch
  / world size), big = the global batch, whatever the accumulation. DDP all-reduces inside the
  last micro-batch's backward, so the rank's gradient is read in a communication hook that wraps
  DDP's own all-reduce (``allreduce_hook``, documented to give the same result as no hook); XLA
  replicas reduce explicitly, after ``accumulate_gradients``. Each rank measures its own share;
  the record, written by rank 0, holds rank 0's (one share per step is an unbiased sample; the
  smoothing over steps does the averaging, with no extra collective).

A step with one gradient only (one process, one micro-batch) records None: cutting its batch in
two for a second size would change the float summation of every such run (its records would no
longer match runs without the probe) and slow it with smaller micro-batches. Norms stay on the
device (no host sync per step; on XLA they are outputs of the step's graph) until ``flush``, which
the trainer calls at evaluations, before checkpoints and at the end: then the per-step estimates
are appended to ``Progress.curves`` as ``noise_grad_sq`` (|G|^2), ``noise_trace`` (tr(Sigma)) and
``noise_scale`` (B_simple, smoothed; ``date.noise.DEFAULT_DECAY``), each as long as ``step``,
None where a step had no estimate. A run that never had two sizes has none of these curves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from date.noise import (
    DEFAULT_DECAY,
    NoiseScaleEMA,
    TwoSizeEstimate,
    squared_grad_norm,
    two_size_estimate,
)

from .distributed import DistributedContext

CURVES = ("noise_grad_sq", "noise_trace", "noise_scale")
#: How the small batch is taken, per mode (recorded in ``Progress.gradient_noise``).
SMALL_BATCH = {
    "micro-batch": "the first micro-batch (one process)",
    "ddp": "rank 0's share of the batch, before DDP's all-reduce",
    "replicas": "rank 0's share of the batch, before the XLA replicas' all-reduce",
}
#: Pending norms are read to the host once this many are waiting, even between flushes, so a long
#: stretch without evaluations holds a bounded number of device tensors.
MAX_PENDING_TENSORS = 4096


@dataclass
class _Pair:
    """One step's squared norms (device tensors until read, then floats) and batch sizes."""

    small: Any
    big: Any
    small_examples: int
    big_examples: int
    step: int

    def estimate(self) -> TwoSizeEstimate | None:
        """The step's unbiased estimates, or None when a norm is not finite (a diverging step)."""
        small, big = float(self.small), float(self.big)
        if not (math.isfinite(small) and math.isfinite(big)):
            return None
        return two_size_estimate(small, big, self.small_examples, self.big_examples)


class NoiseProbe:
    """Collects each step's two squared gradient norms (see the module docstring)."""

    def __init__(self, mode: str, world_size: int = 1, decay: float = DEFAULT_DECAY) -> None:
        if mode not in SMALL_BATCH:
            raise ValueError(f"mode must be one of {', '.join(SMALL_BATCH)}, got {mode!r}")
        self.mode = mode
        self.world_size = world_size
        self.average = NoiseScaleEMA(decay)
        self.progress: Any = None  # the trainer's Progress, whose curves flush() extends
        # this step: small squared norm (device tensor) and its batch, in examples
        self._small: torch.Tensor | None = None
        self._small_examples = 0
        self._hook_sum: torch.Tensor | None = None  # DDP: the rank's bucket norms this step
        self._pending: list[_Pair | None] = []  # one entry per step since the last flush
        self._unread = 0  # pending pairs whose norms are still device tensors

    @classmethod
    def for_run(cls, model: nn.Module, context: DistributedContext, progress: Any) -> NoiseProbe:
        """The probe for a run: its mode from the run's parallelism, the DDP hook registered, and
        the smoothing resumed from ``progress`` (a checkpoint's curves)."""
        if not context.enabled:
            probe = cls("micro-batch")
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            probe = cls("ddp", context.world_size)
            model.register_comm_hook(state=probe, hook=_measure_then_allreduce)
        else:
            probe = cls("replicas", context.world_size)
        probe.attach(progress)
        return probe

    def attach(self, progress: Any) -> None:
        """Extend ``progress``'s curves from now on, continuing the smoothing of its estimates."""
        self.progress = progress
        curves = progress.curves
        if "noise_grad_sq" in curves:
            for signal, noise in zip(curves["noise_grad_sq"], curves["noise_trace"], strict=True):
                if signal is not None and noise is not None:
                    self.average.update(TwoSizeEstimate(signal, noise))

    # ---- events, in the order of a step ---------------------------------------------------

    def first_micro_batch(
        self, parameters: Iterable[nn.Parameter], items: Any, examples: int
    ) -> None:
        """After the first of several micro-batches' backward (gradients summed over ``items``)."""
        if self.mode == "micro-batch":
            self._small = squared_grad_norm(parameters, 1.0 / items)
            self._small_examples = examples

    def accumulated(self, parameters: Iterable[nn.Parameter], items: Any, examples: int) -> None:
        """After ``accumulate_gradients`` has divided this rank's gradients by its ``items``
        (``examples`` of them in this rank's share of the batch)."""
        if self.mode == "replicas":
            self._small = squared_grad_norm(parameters)
            self._small_examples = examples
        elif self.mode == "ddp" and self._hook_sum is not None:
            # The hook saw the rank's gradient summed over its items, before the division.
            self._small = self._hook_sum / (items * items)
            self._small_examples = examples
            self._hook_sum = None

    def reduced(self, parameters: Iterable[nn.Parameter], examples: int, step: int) -> None:
        """After the gradients are those of the whole global batch (``examples`` of it): the
        step's pair, or None when it had one gradient size only."""
        big_examples = examples if self.mode == "micro-batch" else examples * self.world_size
        if self._small is None or not self._small_examples < big_examples:
            self._pending.append(None)
        else:
            big = squared_grad_norm(parameters)
            self._pending.append(_Pair(self._small, big, self._small_examples, big_examples, step))
            self._unread += 1
        self._small = None
        if 2 * self._unread >= MAX_PENDING_TENSORS:
            self._read_pending()

    def _read_pending(self) -> None:
        """Read every pending norm to the host in one transfer (the tensors become floats)."""
        pairs = [
            pair
            for pair in self._pending
            if pair is not None and isinstance(pair.big, torch.Tensor)
        ]
        if not pairs:
            return
        norms = torch.stack([norm.detach().float() for p in pairs for norm in (p.small, p.big)])
        values = norms.tolist()
        for index, pair in enumerate(pairs):
            pair.small, pair.big = values[2 * index], values[2 * index + 1]
        self._unread = 0

    def flush(self) -> None:
        """Append the pending steps' estimates to the curves (see the module docstring)."""
        self._read_pending()
        pending, self._pending = self._pending, []
        curves = self.progress.curves
        estimates = [None if pair is None else pair.estimate() for pair in pending]
        if "noise_grad_sq" not in curves:
            if all(estimate is None for estimate in estimates):
                return
            earlier = len(curves["step"]) - len(pending)
            for name in CURVES:
                curves[name] = [None] * earlier
        for pair, estimate in zip(pending, estimates, strict=True):
            if estimate is not None:
                self.average.update(estimate)
                self._note_sizes(pair)
            curves["noise_grad_sq"].append(None if estimate is None else estimate.grad_sq)
            curves["noise_trace"].append(None if estimate is None else estimate.trace)
            curves["noise_scale"].append(self.average.noise_scale)

    def _note_sizes(self, pair: _Pair) -> None:
        """Record the two batch sizes in ``Progress.gradient_noise`` when they change."""
        info = self.progress.gradient_noise
        if info is None:
            info = self.progress.gradient_noise = {
                "small_batch": SMALL_BATCH[self.mode],
                "decay": self.average.decay,
                "sizes": [],
            }
        sizes = info["sizes"]
        if not sizes or (sizes[-1]["small"], sizes[-1]["big"]) != (
            pair.small_examples,
            pair.big_examples,
        ):
            sizes.append(
                {"from_step": pair.step, "small": pair.small_examples, "big": pair.big_examples}
            )

    @property
    def noise_scale(self) -> float | None:
        """B_simple, smoothed, as of the last flush."""
        return self.average.noise_scale


def _measure_then_allreduce(probe, bucket):
    """DDP communication hook: add the squared norm of this rank's gradients in ``bucket``
    (before any averaging), then DDP's own all-reduce (``allreduce_hook``, which documents that it
    gives the same result as registering no hook).

    No annotations: DDP compares them with ``dist.GradBucket`` and ``Future[Tensor]`` objects,
    and this module's postponed annotations would be strings."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    squared = torch.linalg.vector_norm(bucket.buffer()).float().square()
    probe._hook_sum = squared if probe._hook_sum is None else probe._hook_sum + squared
    return allreduce_hook(None, bucket)
