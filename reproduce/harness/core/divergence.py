"""When a run has blown up, so that its numbers never enter a table as a result.

Two moments decide it. During training (``divergence_check``), the run stops at the first step
whose training loss is not finite, or is far above the first step's loss: at once for a single
step above ``step_factor`` times it, or for the mean over ``window`` steps above ``loss_factor``
times it. The single-step rule needs no window, so a run of fewer steps than the window is judged
too. At the end (``final_metric_check``), a final test metric that is not finite, or worse than
one of the experiment's ``ChanceLimit``s, marks the run as diverged.

Why the first step's loss: an untrained model's loss is about that of a uniform guess over its
outputs (ln(classes) for cross-entropy); a healthy run only goes down from there, apart from the
noise of one batch against another, so a loss many times the first has blown up.

The report layer applies the experiment's current rule again to every record it reads
(``apply_on_read``), so that a record written before a rule existed, or under a looser one, is
never shown as a result. This module imports neither torch nor the trainer, so both can use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: ln 2: how far above a uniform guess's cross-entropy a perplexity chance limit sits.
LN_2 = math.log(2.0)
#: How many times a uniform guess's cross-entropy a classifier's chance limit sits.
CROSS_ENTROPY_FACTOR = 10.0


@dataclass(frozen=True)
class ChanceLimit:
    """A final test metric value that no model reaches by merely not learning.

    ``limit(model_config)`` is the value; a final ``metric`` worse than it (under ``mode``,
    "min": lower is better) marks the run as diverged. ``why`` says where the value comes from
    and is shown with the verdict.
    """

    metric: str
    mode: str
    limit: Callable[[Mapping[str, Any]], float]
    why: str

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"ChanceLimit {self.metric}: mode must be 'min' or 'max'")

    def worse(self, value: float, model_config: Mapping[str, Any]) -> bool:
        limit = self.limit(model_config)
        return value > limit if self.mode == "min" else value < limit


@dataclass(frozen=True)
class Divergence:
    """When a run counts as diverged, so that its numbers never enter a table as a result.

    During training (the run stops at once): a training loss that is not finite, a single step's
    loss above ``step_factor`` x the first step's loss (no window needed, so a run shorter than
    the window is judged too), or a mean training loss over the last ``window`` steps above
    ``loss_factor`` x the first step's loss (an untrained model's loss is about that of uniform
    guessing, ln(classes); ten times that means the weights have blown up). At the end: a final
    test metric that is not finite, or worse than one of ``chance_limits``, values far worse than
    chance that no untrained model reaches (e.g. twice the vocabulary size for perplexity). The
    reason is recorded with the run.
    """

    chance_limits: tuple[ChanceLimit, ...] = ()
    loss_factor: float = 10.0
    window: int = 10
    step_factor: float = 100.0

    def __post_init__(self) -> None:
        if not (self.loss_factor > 1 and self.window >= 1 and self.step_factor > 1):
            raise ValueError(
                f"Divergence: loss_factor and step_factor must be > 1 and window >= 1: {self}"
            )


#: Said in a divergence reason found by ``apply_on_read`` (the record file keeps its own status).
APPLIED_ON_READ = "current rule applied on read, the record file says 'ok'"


def uniform_guess_cross_entropy(
    metric: str, outputs: Callable[[Mapping[str, Any]], int]
) -> ChanceLimit:
    """Mean cross-entropy (nats) above 10 x a uniform guess's, 10 ln(outputs): the true class then
    gets, on geometric average, less than outputs^-10 of the probability. A model that has
    learned nothing sits at ln(outputs); one far above has blown-up weights. A classifier can end
    somewhat above ln(outputs) and still be far better than chance in accuracy, when its errors
    are confident (the ResNet-50 proxy at x64: 67.5% top-1 over 10 classes at 3.04 nats, above
    ln 10 + ln 2 = 3.00), so the limit sits well clear of that."""
    return ChanceLimit(
        metric=metric,
        mode="min",
        limit=lambda config: CROSS_ENTROPY_FACTOR * math.log(outputs(config)),
        why="a uniform guess over the outputs scores ln(outputs) nats; this is 10 times that",
    )


def uniform_guess_perplexity(
    metric: str, outputs: Callable[[Mapping[str, Any]], int]
) -> ChanceLimit:
    """Perplexity above twice the number of outputs: a uniform guess over V outputs has
    perplexity exactly V (perplexity is exp of the mean cross-entropy), so this is the
    cross-entropy rule of ``uniform_guess_cross_entropy`` in perplexity units."""
    return ChanceLimit(
        metric=metric,
        mode="min",
        limit=lambda config: 2.0 * outputs(config),
        why="a uniform guess over V outputs has perplexity V; this is 2V",
    )


def divergence_check(
    divergence: Divergence, losses: list[float], step: int
) -> dict[str, Any] | None:
    """Whether the training loss says the run has diverged: {"step", "reason"}, or None."""
    loss = losses[-1]
    if not math.isfinite(loss):
        return {"step": step, "reason": f"training loss is {loss} (not finite) at step {step}"}
    first = losses[0]
    if len(losses) > 1 and first > 0 and loss > divergence.step_factor * first:
        return {
            "step": step,
            "reason": (
                f"training loss {loss:.4g} at step {step} exceeds {divergence.step_factor:g} x "
                f"the first step's loss ({first:.4g})"
            ),
        }
    window = losses[-divergence.window :]
    if len(window) == divergence.window:
        mean = math.fsum(window) / len(window)
        limit = divergence.loss_factor * first
        if mean > limit:
            return {
                "step": step,
                "reason": (
                    f"mean training loss {mean:.4g} over steps {step - len(window) + 1}-{step} "
                    f"exceeds {divergence.loss_factor:g} x the first step's loss ({first:.4g})"
                ),
            }
    return None


class JudgedExperiment(Protocol):
    """What ``final_metric_check`` reads of an experiment (``experiment.Experiment`` has it)."""

    primary_metric: str
    model_defaults: Mapping[str, Any]
    divergence: Divergence


def final_metric_check(
    experiment: JudgedExperiment,
    metrics: Mapping[str, float],
    step: int,
    model_config: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Whether the final test metrics say the run has diverged: a metric that is not finite
    (the primary metric first), or one worse than its chance limit."""
    config = {**experiment.model_defaults, **(model_config or {})}
    return metrics_check(experiment.divergence, experiment.primary_metric, metrics, step, config)


def metrics_check(
    divergence: Divergence,
    primary_metric: str,
    metrics: Mapping[str, float],
    step: int,
    model_config: Mapping[str, Any],
) -> dict[str, Any] | None:
    """``final_metric_check`` for a rule and a resolved model config (a record's)."""
    config = model_config
    names = [primary_metric, *(m for m in metrics if m != primary_metric)]
    for name in names:
        value = metrics.get(name)
        if value is not None and not math.isfinite(value):
            return {"step": step, "reason": f"final test {name} is {value} (not finite)"}
    for rule in divergence.chance_limits:
        value = metrics.get(rule.metric)
        if value is not None and rule.worse(value, config):
            return {
                "step": step,
                "reason": (
                    f"final test {rule.metric} {value:.4g} is worse than "
                    f"{rule.limit(config):g}, far worse than chance ({rule.why})"
                ),
            }
    return None


def record_divergence(rule: Divergence, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The divergence ``rule`` finds in a run record, from what the record holds: its training
    loss curve replayed step by step as the trainer checks it (the curve logs every step), then
    its final test metrics against the chance limits, with the record's model config. None if
    the rule finds nothing."""
    curves = record["curves"]
    losses: list[float] = []
    for step, loss in zip(curves["step"], curves["loss"], strict=True):
        losses.append(math.nan if loss is None else float(loss))
        found = divergence_check(rule, losses, step)
        if found is not None:
            return found
    metrics = {k: v for k, v in record["final"].items() if isinstance(v, int | float)}
    return metrics_check(
        rule,
        record["primary_metric"],
        metrics,
        record["total_steps"],
        record.get("model_config", {}),
    )


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
