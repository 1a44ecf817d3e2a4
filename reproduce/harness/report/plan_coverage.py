"""Coverage: which runs of a preset's plan have a record, and what the missing ones would cost."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .record_files import RecordFile, is_finite_number


class PlannedRun(Protocol):
    """What the coverage check needs of a planned run (``sweep.PlannedRun`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def same_run_as(self) -> str | None: ...
    @property
    def recipe(self) -> Any: ...  # has to_dict()


def coverage(
    files: Sequence[RecordFile], plan: Sequence[PlannedRun], preset: str
) -> dict[str, Any]:
    """Which runs of the preset's plan have a record, which do not, and what the missing ones
    would cost at the recorded runs' own training time.

    A record counts only if its file name and resolved recipe are the planned ones (a record made
    with another recipe, e.g. a tuning point, is "outside the plan"). A missing run that shares
    its recipe with another (k = 1) costs nothing once that run is trained. The estimate is the
    missing trained runs times the mean ``train_seconds`` of the recorded ok trained runs of the
    plan: every run of a preset covers the same epochs, so the runs differ mainly in per-example
    speed at their batch size, which the estimate does not model (it says so).
    """
    by_name = {item.path.name: item.record for item in files}
    # each planned recipe as a record holds it (through JSON: tuples are lists), and its identity
    recipes = {run.name: json.loads(json.dumps(run.recipe.to_dict())) for run in plan}

    def identity(run: PlannedRun) -> tuple[str, int]:
        return json.dumps(recipes[run.name], sort_keys=True), run.seed

    def recorded(run: PlannedRun) -> bool:
        record = by_name.get(run.name)
        return record is not None and record.get("recipe") == recipes[run.name]

    in_plan = [run for run in plan if recorded(run)]
    trained = {identity(run) for run in in_plan}
    # A planned run without a record of its own is still covered when a recorded run has its
    # recipe and seed: at k = 1 that is the same training run (the report pools it by seed).
    missing = [run for run in plan if not recorded(run) and identity(run) not in trained]
    planned_names = {run.name for run in in_plan}
    planned_seeds = Counter((run.method, run.batch_size) for run in plan)
    missing_seeds: dict[tuple[str, int], list[int]] = {}
    for run in missing:
        missing_seeds.setdefault((run.method, run.batch_size), []).append(run.seed)
    missing_by_method: dict[str, list[str]] = {}
    for (method, batch), seeds in missing_seeds.items():
        cell = str(batch)
        if len(seeds) < planned_seeds[method, batch]:  # only some seeds missing: name them
            cell += f" (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))})"
        missing_by_method.setdefault(method, []).append(cell)
    missing_trained = len({identity(run) for run in missing})
    seconds = [
        float(record["train_seconds"])
        for record in (by_name[run.name] for run in in_plan)
        if record["status"] == "ok"
        and record.get("same_run_as") is None  # trained, not a shared copy
        and is_finite_number(record.get("train_seconds"))
    ]
    mean_seconds = statistics.fmean(seconds) if seconds else None
    return {
        "preset": preset,
        "planned": len(plan),
        "recorded": len(plan) - len(missing),
        "outside_plan": sorted(name for name in by_name if name not in planned_names),
        "missing": [run.name for run in missing],
        "missing_by_method": missing_by_method,  # cells in plan order: "batch" or "batch (seeds)"
        "missing_trained": missing_trained,
        "mean_train_seconds": mean_seconds,
        "mean_train_seconds_n": len(seconds),
        "estimated_missing_train_hours": (
            missing_trained * mean_seconds / 3600 if mean_seconds is not None else None
        ),
    }


def coverage_markdown(cov: Mapping[str, Any], hardware: Sequence[str] = ()) -> str:
    """One paragraph: recorded / planned, what is missing, and the estimated training time."""
    preset = f"`{cov['preset']}` preset"
    if not cov["missing"]:
        text = f"All {cov['planned']} planned runs of the {preset} are recorded."
    else:
        gaps = "; ".join(
            f"`{method}` at {', '.join(cells)}"
            for method, cells in cov["missing_by_method"].items()
        )
        text = (
            f"**Partial sweep: {cov['recorded']} of the {cov['planned']} planned runs of the "
            f"{preset} are recorded.** Not recorded: {gaps}."
        )
        if cov["mean_train_seconds"] is not None:
            on = f" on {', '.join(hardware)}" if hardware else ""
            text += (
                f" Training the {cov['missing_trained']} missing runs would take about "
                f"{cov['estimated_missing_train_hours']:.1f} h{on}, at the mean training time "
                f"of the {cov['mean_train_seconds_n']} recorded ok runs "
                f"({cov['mean_train_seconds'] / 60:.1f} min each; per-batch speed differences "
                "not modelled)."
            )
    if cov["outside_plan"]:
        text += (
            f" {len(cov['outside_plan'])} record(s) are outside the plan (another recipe or "
            "batch): shown in the tables, not counted here."
        )
    return text
