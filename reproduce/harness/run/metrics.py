"""Metric arithmetic that never raises on a blown-up model."""

from __future__ import annotations

import math

#: The largest x whose exp(x) is a finite float64 (exp(709.78...) = 1.797e308, the float max).
LARGEST_EXP_ARGUMENT = math.log(1.7976931348623157e308)


def perplexity(mean_nll: float) -> float:
    """exp(mean token NLL), or inf where that overflows a float: a blown-up model's honest value
    (math.exp raises OverflowError there; a clamp would report a made-up finite number). The
    divergence rules then mark the run as diverged."""
    if math.isnan(mean_nll):
        return math.nan
    return math.exp(mean_nll) if mean_nll <= LARGEST_EXP_ARGUMENT else math.inf
