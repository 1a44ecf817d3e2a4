"""DATE / LEGW learning-rate scaling for large-batch training.

You et al., "Large-Batch Training for LSTM and Beyond" (SC'19, where the method is called DATE;
arXiv 1901.08256 calls it LEGW, linear-epoch gradual warmup): tune a recipe once at a base batch B0,
then for a batch B = k * B0 use peak lr * sqrt(k), warmup epochs * k (the same warmup steps) and the
same epoch budget.

    >>> import date
    >>> base = date.Recipe(batch_size=256, lr=0.1, epochs=90, warmup_epochs=0.3125)
    >>> date.scale(base, 32768).warmup_epochs
    40.0

`date.scale_to_setup(base, per_device_batch=32, accumulation_steps=4, world_size=64)` scales to
the global batch of a data-parallel setup (`date.global_batch_size`: 32 x 4 x 64 = 8192).

Beyond the paper, `date.advise` turns a gradient noise scale measured at the base batch
(`date.noise`; McCandlish et al. 2018) into the critical batch estimate and the recipe there.

Importing `date` runs nothing and does not import torch: `DateScheduler`, `build_optimizer` and
`BiasCorrectedLamb` load their modules (and torch) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from date.advise import Advice, advise, fit_critical_batch, format_advice, noise_from_record
from date.batch import global_batch_size, scale_to_setup
from date.noise import (
    NoiseScaleEMA,
    TwoSizeEstimate,
    pooled_noise_scale,
    smoothed_noise_scale,
    squared_grad_norm,
    two_size_estimate,
)
from date.plan import PlanRow, format_plan, plan
from date.recipe import DECAYS, OPTIMIZERS, Recipe
from date.scaling import ALIASES, METHODS, canonical_method, scale
from date.schedule import lr_at, total_steps, warmup_steps

if TYPE_CHECKING:
    from date.lamb import BiasCorrectedLamb
    from date.optim import build_optimizer
    from date.scheduler import DateScheduler

__version__ = "0.1.0"

# Public names that need torch, and the module each lives in (loaded on first attribute access).
_LAZY = {
    "DateScheduler": "date.scheduler",
    "build_optimizer": "date.optim",
    "BiasCorrectedLamb": "date.lamb",
}

__all__ = [
    "ALIASES",
    "DECAYS",
    "METHODS",
    "OPTIMIZERS",
    "Advice",
    "BiasCorrectedLamb",
    "DateScheduler",
    "NoiseScaleEMA",
    "PlanRow",
    "Recipe",
    "TwoSizeEstimate",
    "__version__",
    "advise",
    "build_optimizer",
    "canonical_method",
    "fit_critical_batch",
    "format_advice",
    "format_plan",
    "global_batch_size",
    "lr_at",
    "noise_from_record",
    "plan",
    "pooled_noise_scale",
    "scale",
    "scale_to_setup",
    "smoothed_noise_scale",
    "squared_grad_norm",
    "total_steps",
    "two_size_estimate",
    "warmup_steps",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
