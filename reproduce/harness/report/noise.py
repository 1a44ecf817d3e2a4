"""The measured gradient noise scale beside the measured breaking point, in every report.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", arXiv 1812.06162) predict
the critical batch, beyond which doubling the batch saves few steps, by the simple noise scale
B_simple (Sections 2.2-2.3). The trainer records B_simple in each run's curves
(``run/noise_probe.py``); a sweep measures where each scaling method stops keeping the base band.
This module puts the two side by side, from the records alone, so a reader sees whether the
estimate predicted the breaking point:

- ``noise_section``: for one sweep folder (tables.md), B_simple per batch (when each run reached
  the time-to-target value, at its end, and pooled over the run), and per method the largest
  batch up to which every batch keeps the base band;
- the helpers the budget report's noise section reads (``budgets.budget_noise_section``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from date.noise import pooled_noise_scale

from .band import ToleranceBand, keeps_band

CURVES = ("noise_grad_sq", "noise_trace", "noise_scale")
NOT_MEASURED = "—"


def run_noise(record: Mapping[str, Any], where: str = "record") -> dict[str, Any] | None:
    """A run's B_simple when it reached the time-to-target value (None if it never did), at its
    end, and pooled over every measured step; None when the run has no noise curves. ValueError
    (starting with ``where``) when the curves are malformed."""
    curves = record["curves"]
    if "noise_grad_sq" not in curves:
        return None
    steps = len(curves["step"])
    for name in CURVES:
        values = curves.get(name)
        if not isinstance(values, list) or len(values) != steps:
            raise ValueError(f"{where}: curves[{name!r}] must be a list as long as curves['step']")
        if any(v is not None and not _is_finite(v) for v in values):
            raise ValueError(f"{where}: curves[{name!r}] holds a value that is not a finite number")
    smoothed = curves["noise_scale"]
    at_target = None
    if record.get("steps_to_target") is not None:
        reached = [i for i, step in enumerate(curves["step"]) if step < record["steps_to_target"]]
        at_target = _last_value(smoothed[: len(reached)])
    pooled, measured = pooled_noise_scale(curves["noise_grad_sq"], curves["noise_trace"])
    sizes = (record.get("gradient_noise") or {}).get("sizes") or []
    return {
        "at_target": at_target,
        "at_end": _last_value(smoothed),
        "pooled": pooled,
        "measured_steps": measured,
        "sizes": sorted({(size["small"], size["big"]) for size in sizes}),
    }


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _last_value(values: Sequence[float | None]) -> float | None:
    return next((value for value in reversed(values) if value is not None), None)


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def format_noise(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.4g}"


def noise_by_batch(records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per batch size: the medians over its trained runs (every method and seed; a record shared
    with an identical run, ``same_run_as``, counts once) of each run's B_simple."""
    rows: dict[int, dict[str, Any]] = {}
    trained = [record for record in records if record.get("same_run_as") is None]
    for batch in sorted({record["batch_size"] for record in trained}):
        measured = []
        for record in trained:
            if record["batch_size"] == batch:
                where = f"{record['method']} b{batch} s{record['seed']}"
                found = run_noise(record, where)
                if found is not None:
                    measured.append(found)
        if not measured:
            continue
        rows[batch] = {
            "runs": len(measured),
            "at_target": _median([run["at_target"] for run in measured]),
            "at_end": _median([run["at_end"] for run in measured]),
            "pooled": _median([run["pooled"] for run in measured]),
            "sizes": sorted({size for run in measured for size in run["sizes"]}),
        }
    return rows


def breaking_points(
    records: Sequence[Mapping[str, Any]], band: ToleranceBand
) -> dict[str, dict[str, int | None]]:
    """Per method: the largest batch up to which every batch of the sweep keeps the base band,
    and the first batch that does not (None: every batch run keeps it, or none was run)."""
    batches = sorted({record["batch_size"] for record in records})
    result = {}
    for method in sorted({record["method"] for record in records}):
        kept, first_miss = None, None
        for batch in batches:
            runs = [r for r in records if r["method"] == method and r["batch_size"] == batch]
            if not runs:
                continue  # this method was not run at this batch
            verdict = keeps_band(runs, band)
            if verdict is None:  # no base band to compare with
                break
            if not verdict:
                first_miss = batch
                break
            kept = batch
        result[method] = {"largest_kept": kept, "first_miss": first_miss}
    return result


def breaking_point_cell(point: Mapping[str, int | None] | None, largest_run: int) -> str:
    """One method's breaking point in a cell: the largest batch kept, then in brackets the first
    batch that misses the band or, when none does, that no larger batch was run (so a budget
    run only at the base batch does not read as "kept up to the base batch and no further")."""
    kept, first_miss = (point or {}).get("largest_kept"), (point or {}).get("first_miss")
    if first_miss is not None:
        return f"{kept or 'none'} (misses {first_miss})"
    if kept is None:
        return "—"
    return f"{kept} (largest run)" if kept == largest_run else f"{kept}"


def suggested_batch(noise_scale: float | None, base_batch: int) -> int | None:
    """The largest base x 2^n not above ``noise_scale`` (what ``date.advise`` suggests)."""
    if noise_scale is None:
        return None
    batch = base_batch
    while batch * 2 <= noise_scale:
        batch *= 2
    return batch


def estimate_source(by_batch: Mapping[int, Mapping[str, Any]], base: int) -> int | None:
    """The batch whose runs give the sweep's estimate: the base batch if it was measured (the
    advisor's setting), else the smallest measured batch."""
    if base in by_batch:
        return base
    return min(by_batch) if by_batch else None


def noise_section(records: Sequence[Mapping[str, Any]], band: ToleranceBand) -> str:
    """The tables.md section: the measured noise scale beside each method's breaking point."""
    base = band.base_batch_size
    by_batch = noise_by_batch(records)
    points = breaking_points(records, band)
    parts = [
        "\n\n## Gradient noise scale and the breaking point\n\n",
        "B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, arXiv 1812.06162, Section 2.2), "
        "measured during training from two gradient sizes per step (the record's `noise_*` "
        "curves, `reproduce/harness/run/noise_probe.py`), estimates the critical batch B_crit "
        "beyond "
        "which doubling the batch saves few steps (Section 2.3). It grows as the loss falls "
        "(Section 3), so it is shown when the run first reached the time-to-target value, at "
        "the run's end, and pooled over the run (ratio of the mean estimates). Medians over the "
        "runs of each batch (every method and seed).\n\n",
    ]
    if by_batch:
        rows = [
            [
                batch,
                f"{batch / base:g}",
                row["runs"],
                format_noise(row["at_target"]),
                format_noise(row["at_end"]),
                format_noise(row["pooled"]),
                ", ".join(f"{small}/{big}" for small, big in row["sizes"]),
            ]
            for batch, row in by_batch.items()
        ]
        headers = ["batch", "k", "runs", "at target", "at end", "pooled", "small/big"]
        parts.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
        parts.append("\n")
    else:
        parts.append(
            "No run recorded a noise estimate: the records predate the noise probe, or every "
            "step had one gradient size (one process, no accumulation). A run with a micro-batch "
            "below its batch (`--set "
            "run.micro_batch_size=...`) or on several ranks records it; `reproduce/advise.py` "
            "trains such a run at the base batch.\n"
        )
    source = estimate_source(by_batch, base)
    if source is not None:
        row = by_batch[source]
        estimate = row["at_target"] if row["at_target"] is not None else row["at_end"]
        which = "at target" if row["at_target"] is not None else "at end"
        parts.append(
            f"\nEstimate from the runs at batch {source} ({which}): B_crit ~ "
            f"{format_noise(estimate)}, so the advisor would suggest batch "
            f"{suggested_batch(estimate, base) or NOT_MEASURED}"
            f" (the largest {base} x 2^n not above it).\n"
        )
    if band.mean is None:
        parts.append("\nNo base band (no ok run at the base batch): no breaking point to show.")
        return "".join(parts)
    largest = max(record["batch_size"] for record in records)
    rows = [
        [
            method,
            point["largest_kept"] or "none",
            point["first_miss"] or (f"none up to {largest}" if point["largest_kept"] else "—"),
        ]
        for method, point in points.items()
    ]
    parts.append(
        f"\nMeasured breaking point: the largest batch up to which every batch run keeps the "
        f"base band ({band.metric}, see above), and the first batch run that misses it:\n\n"
    )
    headers = ["method", "largest batch keeping the band", "first batch missing it"]
    parts.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    return "".join(parts)
