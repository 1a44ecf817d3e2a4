"""The gradient noise scale, measured during training from gradients at two batch sizes.

McCandlish, Kaplan, Amodei et al., "An Empirical Model of Large-Batch Training" (arXiv 1812.06162,
2018). With G the true gradient and Sigma the per-example gradient covariance, the *simple noise
scale* is ``B_simple = tr(Sigma) / |G|^2`` (their Section 2.2). The squared norm of a gradient
averaged over B examples has expectation ``|G|^2 + tr(Sigma) / B``, so squared norms measured at
two batch sizes B_small < B_big give unbiased estimates of both terms (their Appendix A.1):

    |G|^2     ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

Each step's pair is noisy (either estimate may be negative), and the ratio of two unbiased
estimates is not unbiased; as the paper does, each estimate is smoothed on its own by an
exponential moving average, and B_simple is the ratio of the two averages.

The math here is plain Python (no torch); ``squared_grad_norm`` takes the squared norm of a
model's gradients with torch, imported only when it is called.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Smoothing of the per-step estimates: each step keeps 0.99 of the running average, a time
#: constant of 1 / (1 - 0.99) = 100 steps. The paper gives no value; 100 steps is short next to how
#: slowly the noise scale drifts (it grows as the loss falls, over epochs: McCandlish et al.,
#: Section 3) and long enough that the average of ~100 noisy pairs is stable (tests/test_noise.py
#: measures the spread on a problem with a known answer).
DEFAULT_DECAY = 0.99


@dataclass(frozen=True)
class TwoSizeEstimate:
    """One step's unbiased estimates of |G|^2 and tr(Sigma) (McCandlish et al., Appendix A.1)."""

    grad_sq: float
    trace: float


def two_size_estimate(
    small_sq_norm: float, big_sq_norm: float, small_batch: float, big_batch: float
) -> TwoSizeEstimate:
    """Unbiased |G|^2 and tr(Sigma) from the squared norms of the gradient averaged over
    ``small_batch`` and over ``big_batch`` examples (McCandlish et al., Appendix A.1).

    Raises ValueError unless 0 < small_batch < big_batch and both norms are finite and >= 0.
    """
    if not (math.isfinite(small_batch) and math.isfinite(big_batch) and small_batch > 0):
        raise ValueError(f"batch sizes must be positive, got {small_batch!r} and {big_batch!r}")
    if not small_batch < big_batch:
        raise ValueError(
            f"the two batch sizes must differ (small {small_batch:g} < big {big_batch:g}): one "
            "gradient size per step cannot separate noise from signal"
        )
    for name, value in (("small_sq_norm", small_sq_norm), ("big_sq_norm", big_sq_norm)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite squared norm >= 0, got {value!r}")
    grad_sq = (big_batch * big_sq_norm - small_batch * small_sq_norm) / (big_batch - small_batch)
    trace = (small_sq_norm - big_sq_norm) / (1.0 / small_batch - 1.0 / big_batch)
    return TwoSizeEstimate(grad_sq=grad_sq, trace=trace)


class NoiseScaleEMA:
    """Exponential moving averages of the |G|^2 and tr(Sigma) estimates, each on its own, and
    their ratio B_simple (McCandlish et al., Appendix A.1).

    The averages start at 0 and are bias-corrected by 1 / (1 - decay^n) after n updates (as Adam
    corrects its moments, Kingma and Ba 2015, Section 3), so the first steps are not pulled
    towards 0. Both averages share n, so the correction cancels in their ratio.
    """

    def __init__(self, decay: float = DEFAULT_DECAY) -> None:
        if not (math.isfinite(decay) and 0.0 <= decay < 1.0):
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = decay
        self.updates = 0
        self._grad_sq = 0.0
        self._trace = 0.0

    def update(self, estimate: TwoSizeEstimate) -> None:
        """Fold in one step's estimates; a pair with a non-finite member is ignored."""
        if not (math.isfinite(estimate.grad_sq) and math.isfinite(estimate.trace)):
            return
        keep = self.decay
        self._grad_sq = keep * self._grad_sq + (1.0 - keep) * estimate.grad_sq
        self._trace = keep * self._trace + (1.0 - keep) * estimate.trace
        self.updates += 1

    @property
    def grad_sq(self) -> float | None:
        """The smoothed |G|^2 estimate (None before the first update)."""
        return self._grad_sq / (1.0 - self.decay**self.updates) if self.updates else None

    @property
    def trace(self) -> float | None:
        """The smoothed tr(Sigma) estimate (None before the first update)."""
        return self._trace / (1.0 - self.decay**self.updates) if self.updates else None

    @property
    def noise_scale(self) -> float | None:
        """B_simple = smoothed tr(Sigma) / smoothed |G|^2, in examples; None until both averages
        are positive (early on, or where the noise swamps the signal, |G|^2 may average <= 0)."""
        if not self.updates or self._grad_sq <= 0.0 or self._trace <= 0.0:
            return None
        return self._trace / self._grad_sq


def smoothed_noise_scale(
    grad_sq: Sequence[float | None],
    trace: Sequence[float | None],
    decay: float = DEFAULT_DECAY,
) -> list[float | None]:
    """B_simple after every step, from per-step estimates (None where a step had none)."""
    if len(grad_sq) != len(trace):
        raise ValueError(f"grad_sq and trace differ in length: {len(grad_sq)} vs {len(trace)}")
    average = NoiseScaleEMA(decay)
    curve: list[float | None] = []
    for signal, noise in zip(grad_sq, trace, strict=True):
        if signal is not None and noise is not None:
            average.update(TwoSizeEstimate(float(signal), float(noise)))
        curve.append(average.noise_scale)
    return curve


def pooled_noise_scale(
    grad_sq: Iterable[float | None], trace: Iterable[float | None]
) -> tuple[float | None, int]:
    """B_simple over a whole window of steps, weighting each step alike: the ratio of the mean
    tr(Sigma) estimate to the mean |G|^2 estimate, and the number of steps that had one."""
    pairs = [
        (float(signal), float(noise))
        for signal, noise in zip(grad_sq, trace, strict=True)
        if signal is not None and noise is not None
    ]
    total_signal = math.fsum(signal for signal, _ in pairs)
    total_noise = math.fsum(noise for _, noise in pairs)
    if not pairs or total_signal <= 0.0 or total_noise <= 0.0:
        return None, len(pairs)
    return total_noise / total_signal, len(pairs)


def squared_grad_norm(parameters: Iterable[torch.Tensor], scale: float = 1.0) -> torch.Tensor:
    """``scale**2 * sum |p.grad|^2`` over ``parameters`` with a gradient, as a 0-dim float32 tensor
    on their device: fused (``torch.nn.utils.get_total_norm``, one foreach kernel per device and
    dtype) and without a host sync, so a training loop can read it later, or never.

    ``scale`` multiplies the gradients before squaring (1 / items turns a gradient summed over
    items into their mean) without touching them.
    """
    import torch

    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        raise ValueError("no parameter has a gradient: call backward() first")
    total = torch.nn.utils.get_total_norm(grads, norm_type=2.0).float()
    return (total * scale).square()
