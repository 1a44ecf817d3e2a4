"""Which batch is worth it: the critical batch from the gradient noise scale, and the DATE recipe
there (no training, no torch).

McCandlish et al., "An Empirical Model of Large-Batch Training" (arXiv 1812.06162), Section 2.3:
training to a given result takes S = S_min (1 + B_noise / B) optimizer steps and E = E_min (1 +
B / B_noise) examples at batch B, so the critical batch B_crit = E_min / S_min equals B_noise: below
it, doubling the batch nearly halves the steps at little extra data; above it, it costs data and
saves few steps; at B = B_crit both are twice their minimum. B_noise needs the Hessian; the simple
noise scale B_simple = tr(Sigma) / |G|^2 (Section 2.2, measured by ``date.noise``) stands in for
it, exactly when the Hessian is a multiple of the identity and as an estimate otherwise. The
noise scale grows as the loss falls (Section 3), so a value from early in training understates
the batch that pays off later.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from date._table import markdown_table
from date.noise import DEFAULT_DECAY, pooled_noise_scale, smoothed_noise_scale
from date.plan import PlanRow, format_plan, plan
from date.recipe import Recipe, check_batch_size
from date.scaling import canonical_method, scale

#: The advice lists batches base x 2^n up to this many times the critical batch estimate, so the
#: table shows where doubling stops paying off, not only where it still does.
LADDER_BEYOND_CRITICAL = 4
LADDER_MAX_ROWS = 24


@dataclasses.dataclass(frozen=True)
class BatchOutlook:
    """What the step model (McCandlish et al., Section 2.3) predicts at one batch, relative to the
    base batch B0: steps(B0) / steps(B) and examples(B) / examples(B0) to the same result."""

    batch_size: int
    k: float
    step_speedup: float
    examples_ratio: float


def step_speedup(batch_size: float, base_batch: float, noise_scale: float) -> float:
    """steps(B0) / steps(B) = (1 + B_noise / B0) / (1 + B_noise / B)."""
    return (1.0 + noise_scale / base_batch) / (1.0 + noise_scale / batch_size)


def examples_ratio(batch_size: float, base_batch: float, noise_scale: float) -> float:
    """examples(B) / examples(B0) = (1 + B / B_noise) / (1 + B0 / B_noise)."""
    return (1.0 + batch_size / noise_scale) / (1.0 + base_batch / noise_scale)


@dataclasses.dataclass(frozen=True)
class Advice:
    """The critical batch estimate, the suggested batch, and the recipe scaled to it."""

    noise_scale: float
    base: Recipe
    method: str
    #: The largest base x 2^n not above the critical batch (the base batch when B_crit is below
    #: it), and not beyond the largest batch the scaling method allows for this recipe.
    suggested_batch: int
    recipe: Recipe
    plan_row: PlanRow
    ladder: tuple[BatchOutlook, ...]
    #: Why the suggestion stops below B_crit when it does (a DATE warmup longer than the budget).
    limited_by: str | None = None


def check_noise_scale(noise_scale: float) -> float:
    """``noise_scale`` as a float, or ValueError unless it is a finite number > 0."""
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, int | float):
        raise ValueError(f"noise scale must be a number, got {noise_scale!r}")
    if not (math.isfinite(noise_scale) and noise_scale > 0):
        raise ValueError(f"noise scale must be a finite number > 0, got {noise_scale!r}")
    return float(noise_scale)


def advise(base: Recipe, noise_scale: float, dataset_size: int, method: str = "date") -> Advice:
    """The batch worth using for ``base`` (tuned at ``base.batch_size``) given the measured noise
    scale B_simple (in examples, as ``date.noise`` measures it), and ``method``'s recipe there.

    Raises ValueError for a noise scale that is not a positive number, a bad dataset size or an
    unknown method.
    """
    noise_scale = check_noise_scale(noise_scale)
    dataset_size = check_batch_size(dataset_size, name="dataset_size")
    method = canonical_method(method)
    base_batch = base.batch_size
    ladder = [base_batch]
    while (
        ladder[-1] * 2 <= LADDER_BEYOND_CRITICAL * max(noise_scale, base_batch)
        and len(ladder) < LADDER_MAX_ROWS
    ):
        ladder.append(ladder[-1] * 2)
    suggested, limited_by = base_batch, None
    for batch in ladder[1:]:
        if batch > noise_scale:
            break
        try:
            scale(base, batch, method)
        except ValueError as error:
            limited_by = str(error)
            break
        suggested = batch
    recipe = scale(base, suggested, method)
    (row,) = plan(base, [suggested], [method], dataset_size=dataset_size)
    outlook = tuple(
        BatchOutlook(
            batch_size=batch,
            k=batch / base_batch,
            step_speedup=step_speedup(batch, base_batch, noise_scale),
            examples_ratio=examples_ratio(batch, base_batch, noise_scale),
        )
        for batch in ladder
    )
    return Advice(noise_scale, base, method, suggested, recipe, row, outlook, limited_by)


def format_advice(advice: Advice) -> str:
    """The advice as Markdown: the estimate, the predicted step speed-ups, the scaled recipe."""
    base = advice.base.batch_size
    k = advice.suggested_batch / base
    lines = [
        f"Gradient noise scale B_simple = {advice.noise_scale:.4g} examples: the critical batch "
        "estimate B_crit ~ B_simple (McCandlish et al. 2018, arXiv 1812.06162, Sections 2.2-2.3).",
        "",
    ]
    if advice.suggested_batch == base and advice.noise_scale < 2 * base and not advice.limited_by:
        lines.append(
            f"Suggested batch: {base}, the base batch: doubling it is already past (or at) the "
            "critical batch, so it would save few steps for up to twice the examples."
        )
    else:
        lines.append(
            f"Suggested batch: {advice.suggested_batch} (k = {k:g} x base {base}), the largest "
            "base x 2^n not above B_crit."
        )
    if advice.limited_by:
        lines.append(f"Stopped there: the next doubling is not allowed ({advice.limited_by}).")
    lines += [
        "",
        "Predicted to the same result, by S = S_min (1 + B_noise / B) and E = E_min (1 + B / "
        "B_noise) (Section 2.3), relative to the base batch; at B = B_crit both steps and "
        "examples are twice their minimum:",
        "",
    ]
    rows = [
        [
            outlook.batch_size,
            f"{outlook.k:g}",
            f"{outlook.step_speedup:.3g}",
            f"{outlook.examples_ratio:.3g}",
            "<- suggested" if outlook.batch_size == advice.suggested_batch else "",
        ]
        for outlook in advice.ladder
    ]
    headers = ["batch", "k", "step speed-up", "examples x", ""]
    lines.append(markdown_table(headers, rows, numbers_right=False))
    lines += [
        "",
        f"The {advice.method} recipe at batch {advice.suggested_batch} (from the base recipe at "
        f"{base}, no re-tuning):",
        "",
        format_plan([advice.plan_row]),
        "",
        "B_simple is measured where the run was; it grows as the loss falls (Section 3), so later "
        "in training larger batches pay off. Treat the suggestion as an order of magnitude.",
    ]
    return "\n".join(lines)


def fit_critical_batch(points: Sequence[tuple[float, float]]) -> float | None:
    """B_crit fitted to measured (batch, steps to a result) points by S = S_min (1 + B_crit / B)
    (McCandlish et al., Section 2.3; with E = B S it is their fitted step/example tradeoff), or
    None when fewer than two batches are given or the fit has no positive S_min and B_crit.

    S = a + b / B is linear in (a, b) = (S_min, S_min B_crit); it is fitted by least squares on
    the relative error (weights 1 / S^2), as step counts span orders of magnitude.
    """
    rows = [(1.0 / batch, float(steps)) for batch, steps in points if batch > 0 and steps > 0]
    if len({inverse for inverse, _ in rows}) < 2:
        return None
    # Normal equations of sum_i ((a + b x_i - s_i) / s_i)^2 with x = 1 / B.
    w = [1.0 / steps**2 for _, steps in rows]
    sw = math.fsum(w)
    swx = math.fsum(wi * x for wi, (x, _) in zip(w, rows, strict=True))
    swxx = math.fsum(wi * x * x for wi, (x, _) in zip(w, rows, strict=True))
    sws = math.fsum(wi * s for wi, (_, s) in zip(w, rows, strict=True))
    swxs = math.fsum(wi * x * s for wi, (x, s) in zip(w, rows, strict=True))
    determinant = sw * swxx - swx * swx
    if determinant <= 0:
        return None
    intercept = (swxx * sws - swx * swxs) / determinant
    slope = (sw * swxs - swx * sws) / determinant
    if intercept <= 0 or slope <= 0:
        return None
    return slope / intercept


def noise_from_record(path: Path, smoothing: float = DEFAULT_DECAY) -> dict[str, Any]:
    """The noise scale of a run record of the DATE reproduction suite (JSON; its curves
    ``noise_grad_sq`` and ``noise_trace`` hold per-step estimates, ``date.noise``): B_simple
    smoothed with ``smoothing`` at the last step that has it, and pooled over the run; with the
    record's base recipe and dataset size (examples = steps per epoch x batch). ValueError naming
    the file and what is missing."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON run record ({error})") from None
    if not isinstance(record, Mapping):
        raise ValueError(f"{path}: not a run record (a JSON object)")
    curves = record.get("curves")
    if not isinstance(curves, Mapping) or "noise_grad_sq" not in curves:
        raise ValueError(
            f"{path}: no gradient noise estimate in its curves (the run had one gradient "
            "size per step: one process and no accumulation); train with a micro-batch below the "
            "batch (reproduce/advise.py does), e.g. --set run.micro_batch_size=BATCH/4"
        )
    try:
        base = record["base_recipe"]
        recipe = Recipe.from_dict(
            {key: tuple(value) if isinstance(value, list) else value for key, value in base.items()}
        )
        dataset_size = round(float(record["steps_per_epoch"]) * int(record["batch_size"]))
        grad_sq, trace = curves["noise_grad_sq"], curves["noise_trace"]
        steps = curves["step"]
        smoothed = smoothed_noise_scale(grad_sq, trace, smoothing)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(f"{path}: not a run record with noise curves ({error})") from None
    last = next((i for i in range(len(smoothed) - 1, -1, -1) if smoothed[i] is not None), None)
    pooled, measured = pooled_noise_scale(grad_sq, trace)
    if last is None:
        raise ValueError(
            f"{path}: its {measured} measured steps do not resolve a positive noise "
            "scale (the gradient signal is lost in the noise at this batch); train longer"
        )
    return {
        "noise_scale": smoothed[last],
        "pooled_noise_scale": pooled,
        "measured_steps": measured,
        "step": int(steps[last]) + 1,
        "steps": len(steps),
        "base_recipe": recipe,
        "dataset_size": dataset_size,
        "experiment": record.get("experiment"),
        "method": record.get("method"),
        "batch_size": record.get("batch_size"),
        "seed": record.get("seed"),
    }
