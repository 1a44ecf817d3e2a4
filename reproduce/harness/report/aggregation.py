"""Per-cell aggregation of run records: one (method, batch size) cell over its seeds, and the
base batch pooled by seed (at k = 1 every scaling rule is the base recipe)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .record_files import is_finite_number, sweep_info


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof 1; None with fewer than 2 values); (None, None) when empty."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    # Sample standard deviation (ddof=1): the seeds are a sample of the run-to-run spread.
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


@dataclass(frozen=True)
class Aggregate:
    """Summary of one (method, batch_size) cell over its seeds.

    n: runs (seeds); n_diverged: runs with status "diverged"; n_values: ok runs that recorded the
    metric; mean/std: over those ok runs (std is the sample std, None with fewer than 2 values).
    """

    method: str
    batch_size: int
    k: float
    metric: str
    n: int
    n_diverged: int
    n_values: int
    mean: float | None
    std: float | None
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        return data


def ok_values(runs: Sequence[Mapping[str, Any]], metric: str) -> list[float]:
    """The finite `metric` values of the ok runs (diverged runs never enter a mean)."""
    return [
        run["final"][metric]
        for run in runs
        if run["status"] == "ok" and is_finite_number(run["final"].get(metric))
    ]


def _aggregate_runs(
    method: str, batch_size: int, base: int, runs: Sequence[Mapping[str, Any]], metric: str
) -> Aggregate:
    values = ok_values(runs, metric)
    mean, std = mean_std(values)
    return Aggregate(
        method=method,
        batch_size=batch_size,
        k=batch_size / base,
        metric=metric,
        n=len(runs),
        n_diverged=sum(run["status"] == "diverged" for run in runs),
        n_values=len(values),
        mean=mean,
        std=std,
        seeds=tuple(sorted(run["seed"] for run in runs)),
    )


def group_by_cell(
    records: Sequence[Mapping[str, Any]],
) -> dict[tuple[str, int], list[Mapping[str, Any]]]:
    """Records grouped by (method, batch size), sorted by that key."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["method"], record["batch_size"]), []).append(record)
    return dict(sorted(groups.items()))


def aggregate(records: Sequence[Mapping[str, Any]], metric: str | None = None) -> list[Aggregate]:
    """Per (method, batch_size), sorted: seeds, diverged count, mean and sample std of `metric`.

    `metric` defaults to the records' primary metric. Mean and std are over ok runs only; a
    diverged run counts in n and n_diverged.
    """
    info = sweep_info(records)
    metric = metric or info.primary_metric
    return [
        _aggregate_runs(method, batch, info.base_batch_size, runs, metric)
        for (method, batch), runs in group_by_cell(records).items()
    ]


def pooled_by_seed(
    records: Sequence[Mapping[str, Any]], batch_size: int
) -> list[Mapping[str, Any]]:
    """One run per seed at `batch_size`, across methods (used at the base batch, where k = 1).

    At k = 1 every scaling rule is the base recipe, so runs of different methods with the same
    seed are the same run; pick an ok one if any, deterministically (first method by name).
    """
    by_seed: dict[int, Mapping[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r["seed"], r["status"] != "ok", r["method"])):
        if record["batch_size"] == batch_size:
            by_seed.setdefault(record["seed"], record)
    return [by_seed[seed] for seed in sorted(by_seed)]


def methods_of(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The methods of the records, sorted by name."""
    return sorted({record["method"] for record in records})


def batches_of(records: Sequence[Mapping[str, Any]]) -> list[int]:
    """The batch sizes of the records, ascending."""
    return sorted({record["batch_size"] for record in records})
