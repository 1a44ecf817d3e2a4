"""Tabulate what each scaling method gives at each batch size (no training, no torch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from date._table import markdown_table
from date.recipe import Recipe, check_batch_size
from date.scaling import METHODS, canonical_method, scale
from date.schedule import total_steps, warmup_steps


@dataclasses.dataclass(frozen=True)
class PlanRow:
    """One batch size under one scaling method (`method` is the canonical name)."""

    batch_size: int
    method: str
    #: k = batch_size / base batch size.
    k: float
    peak_lr: float
    warmup_epochs: float
    #: warmup_epochs * steps_per_epoch (constant across batch sizes under DATE).
    warmup_steps: float
    total_steps: int
    #: dataset_size / batch_size (may be fractional).
    steps_per_epoch: float


def plan(
    recipe: Recipe,
    batch_sizes: Iterable[int],
    methods: Sequence[str] = METHODS,
    *,
    dataset_size: int,
) -> list[PlanRow]:
    """Scale `recipe` to every batch size by every method; rows ordered by batch size, then method.

    A combination that `date.scale` rejects (a warmup longer than the epoch budget) raises its
    ValueError rather than being dropped.
    """
    dataset_size = check_batch_size(dataset_size, name="dataset_size")
    canonical = [canonical_method(method) for method in methods]
    if not canonical:
        raise ValueError("methods must name at least one scaling method")
    sizes = [check_batch_size(size) for size in batch_sizes]
    if not sizes:
        raise ValueError("batch_sizes must contain at least one batch size")
    rows = []
    for batch_size in sizes:
        steps_per_epoch = dataset_size / batch_size
        for method in canonical:
            scaled = scale(recipe, batch_size, method)
            rows.append(
                PlanRow(
                    batch_size=batch_size,
                    method=method,
                    k=batch_size / recipe.batch_size,
                    peak_lr=scaled.lr,
                    warmup_epochs=scaled.warmup_epochs,
                    warmup_steps=warmup_steps(scaled, steps_per_epoch),
                    total_steps=total_steps(scaled, steps_per_epoch),
                    steps_per_epoch=steps_per_epoch,
                )
            )
    return rows


# Column formats: k and warmup epochs to 6 significant digits, peak lr to 5 (0.1 * sqrt(128) ->
# 1.1314), step counts to 1 decimal (warmup) and 2 decimals (steps per epoch).
_FORMATS = ("", "", ".6g", ".5g", ".6g", ".1f", "", ".2f")


def format_plan(rows: Sequence[PlanRow]) -> str:
    """Render plan rows as a GitHub-flavoured Markdown table."""
    headers = [field.name for field in dataclasses.fields(PlanRow)]
    table = [
        [
            format(value, spec)
            for value, spec in zip(dataclasses.astuple(row), _FORMATS, strict=True)
        ]
        for row in rows
    ]
    return markdown_table(headers, table)
