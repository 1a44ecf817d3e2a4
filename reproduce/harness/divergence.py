"""When a run counts as diverged: the rule, as data and pure functions (no torch).

The trainer applies it while training (``trainer.train`` stops at the first step it fires) and
the report layer applies the experiment's current rule again to every record it reads
(``apply_on_read``), so that a record written before a rule existed, or under a looser one, is
never shown as a result. Both import this module; neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Said in a divergence reason found by ``apply_on_read`` (the record file keeps its own status).
APPLIED_ON_READ = "current rule applied on read, the record file says 'ok'"


@dataclass(frozen=True)
class Divergence:
    """When a run counts as diverged, so that its numbers never enter a table as a result.

    During training (the run stops at once): a training loss that is not finite, or a mean
    training loss over the last ``window`` steps above ``loss_factor`` x the first step's loss
    (an untrained model's loss is about that of uniform guessing, ln(classes); ten times that
    means the weights have blown up). At the end: a final test metric that is not finite or is
    worse than ``metric_limit``, a value far worse than chance that no untrained model reaches
    (e.g. twice the vocabulary size for perplexity; None where such a value has no meaning, as
    for accuracy, where a collapsed model sits at chance rather than below it). The reason is
    recorded with the run.
    """

    metric_limit: float | None = None
    loss_factor: float = 10.0
    window: int = 10

    def __post_init__(self) -> None:
        if not (self.loss_factor > 1 and self.window >= 1):
            raise ValueError(f"Divergence: loss_factor must be > 1 and window >= 1: {self}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric_limit": self.metric_limit,
            "loss_factor": self.loss_factor,
            "window": self.window,
        }


def loss_divergence(rule: Divergence, losses: Sequence[float], step: int) -> dict[str, Any] | None:
    """Whether the training losses so far (``losses[-1]`` at ``step``) say the run has diverged:
    {"step", "reason"} or None (see ``Divergence``)."""
    loss = losses[-1]
    if not math.isfinite(loss):
        return {"step": step, "reason": f"training loss is {loss} (not finite) at step {step}"}
    window = losses[-rule.window :]
    if len(window) == rule.window:
        mean = math.fsum(window) / len(window)
        limit = rule.loss_factor * losses[0]
        if mean > limit:
            return {
                "step": step,
                "reason": (
                    f"mean training loss {mean:.4g} over steps {step - len(window) + 1}-{step} "
                    f"exceeds {rule.loss_factor:g} x the first step's loss ({losses[0]:.4g})"
                ),
            }
    return None


def metric_divergence(
    rule: Divergence, metric: str, mode: str, value: float | None, step: int
) -> dict[str, Any] | None:
    """Whether the final test ``metric`` (minimized if ``mode`` is "min", else maximized) says
    the run has diverged: {"step", "reason"} or None (see ``Divergence``)."""
    if value is None:
        return None
    if not math.isfinite(value):
        return {"step": step, "reason": f"final test {metric} is {value} (not finite)"}
    limit = rule.metric_limit
    if limit is not None and (value > limit if mode == "min" else value < limit):
        return {
            "step": step,
            "reason": f"final test {metric} {value:.4g} is worse than {limit:g}, "
            "far worse than chance",
        }
    return None


def record_divergence(rule: Divergence, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The divergence ``rule`` finds in a run record, from what the record holds: its training
    loss curve replayed step by step as the trainer checks it (the curve logs every step), then
    its final primary metric. None if the rule finds nothing."""
    curves = record["curves"]
    losses: list[float] = []
    for step, loss in zip(curves["step"], curves["loss"], strict=True):
        losses.append(math.nan if loss is None else float(loss))
        found = loss_divergence(rule, losses, step)
        if found is not None:
            return found
    metric = record["primary_metric"]
    value = record["final"].get(metric)
    return metric_divergence(rule, metric, record["mode"], value, record["total_steps"])


def apply_on_read(record: dict[str, Any], rule: Divergence | None) -> dict[str, Any]:
    """``record`` as the current ``rule`` judges it: an ok record the rule finds diverged comes
    back as a copy with status "diverged" and a divergence whose reason says the rule was applied
    on read (the file is not rewritten); any other record comes back unchanged. A record already
    diverged keeps its own recorded reason."""
    if rule is None or record["status"] != "ok":
        return record
    found = record_divergence(rule, record)
    if found is None:
        return record
    reason = f"{found['reason']}; {APPLIED_ON_READ}"
    return {
        **record,
        "status": "diverged",
        "divergence": {"step": found["step"], "reason": reason},
        "diverged_at_step": found["step"],
    }
