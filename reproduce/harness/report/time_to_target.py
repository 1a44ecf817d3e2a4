"""speedup.md: steps and seconds to the time-to-target value, relative to the base batch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from .aggregation import group_by_cell, mean_std, pooled_by_seed
from .formatting import fmt_k, fmt_number
from .record_files import sweep_info


def _reached(runs: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [run[key] for run in runs if run[key] is not None]


def speedup_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, batch): mean steps/seconds to target over seeds that reached it, and ratios.

    The base is every run at the base batch pooled by seed (all methods coincide at k = 1).
    ratio = base mean / this mean, so > 1 means fewer steps (or seconds) than the base batch.
    A run that diverged after reaching the target still counts as having reached it.
    """
    info = sweep_info(records)
    pooled = pooled_by_seed(records, info.base_batch_size)
    base_steps, _ = mean_std(_reached(pooled, "steps_to_target"))
    base_seconds, _ = mean_std(_reached(pooled, "seconds_to_target"))
    rows = []
    for (method, batch), runs in group_by_cell(records).items():
        steps, _ = mean_std(_reached(runs, "steps_to_target"))
        seconds, _ = mean_std(_reached(runs, "seconds_to_target"))
        rows.append(
            {
                "method": method,
                "batch_size": batch,
                "k": batch / info.base_batch_size,
                "n": len(runs),
                "n_reached": len(_reached(runs, "steps_to_target")),
                "n_diverged": sum(run["status"] == "diverged" for run in runs),
                "steps_to_target": steps,
                "seconds_to_target": seconds,
                "step_ratio": _ratio(base_steps, steps),
                "seconds_ratio": _ratio(base_seconds, seconds),
            }
        )
    return rows


def _ratio(base: float | None, value: float | None) -> float | None:
    if base is None or value is None or value == 0:
        return None
    return base / value


def time_targets(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The distinct time-to-target definitions of the records, as sorted JSON strings."""
    found = {
        json.dumps(record["time_to_target"], sort_keys=True)
        for record in records
        if record["time_to_target"] is not None
    }
    return sorted(found)


def speedup_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per method and batch, mean steps and seconds to target and ratio vs base batch.

    'not reached' when no seed reached the target; ratio = base / this (> 1 = faster).
    """
    table = []
    for row in speedup_rows(records):
        reached = f"{row['n_reached']}/{row['n']}"
        if row["steps_to_target"] is None:
            steps = seconds = "not reached"
        else:
            steps = f"{fmt_number(row['steps_to_target'], strip=True)} ({reached})"
            seconds = fmt_number(row["seconds_to_target"], strip=True)
        table.append(
            [
                row["method"],
                str(row["batch_size"]),
                fmt_k(row["k"]),
                steps,
                seconds,
                "—" if row["step_ratio"] is None else f"{fmt_number(row['step_ratio'], 3)}x",
                "—" if row["seconds_ratio"] is None else f"{fmt_number(row['seconds_ratio'], 3)}x",
                f"{row['n_diverged']}/{row['n']}",
            ]
        )
    headers = ["method", "batch", "k", "steps to target (reached)", "seconds to target"]
    headers += ["step speedup", "time speedup", "diverged"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)
