"""A user's sweep next to the published records of the same experiment and preset.

The main job (`bin/reproduce EXPERIMENT`) trains into its own folder (runs/EXPERIMENT/PRESET) and
ends by comparing, cell by cell (method, batch size), the user's mean with the published one in
results/EXPERIMENT/PRESET. The rule is the suite's own: a cell agrees when the two means are no
further apart than the published base-batch tolerance band (max(2 x std over seeds, the
experiment's floor); band.py), i.e. the published run-to-run spread; two cells that both diverged
agree too. A cell recorded with a different configuration (another recipe, model, data or
precision: the records' config_key) is compared all the same and marked.

Read from records only (and the published summary.json's band): nothing here imports training
code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aggregation import Aggregate, aggregate, group_by_cell
from .formatting import fmt_number
from .record_files import read_record_files
from .writer import REPORT_FILES


@dataclass(frozen=True)
class CellComparison:
    """One (method, batch size) cell: the user's mean, the published mean and band, the verdict."""

    method: str
    batch_size: int
    yours: float | None
    published: float | None
    half_width: float
    verdict: str  # agrees, differs, both diverged, diverged here only, ...
    same_config: bool


def _config_keys(groups: Mapping[tuple[str, int], Sequence[Mapping[str, Any]]]) -> dict:
    return {cell: {run.get("config_key") for run in runs} for cell, runs in groups.items()}


def _verdict(mine: Aggregate, theirs: Aggregate | None, half_width: float) -> str:
    if theirs is None:
        return "not published"
    if mine.n_diverged and theirs.n_diverged:
        return "both diverged"
    if mine.n_diverged:
        return "diverged here only"
    if theirs.n_diverged:
        return "diverged in the published run only"
    if mine.mean is None or theirs.mean is None:
        return "no value to compare"
    return "agrees" if abs(mine.mean - theirs.mean) <= half_width else "differs"


def compare_with_published(
    yours: str | os.PathLike[str], published: str | os.PathLike[str]
) -> list[CellComparison]:
    """Every cell of the user's folder against the published folder (both with records; the
    published one with its report written). Raises FileNotFoundError without that report."""
    published = Path(published)
    summary = json.loads((published / REPORT_FILES["summary"]).read_text(encoding="utf-8"))
    half_width = float(summary["band"]["half_width"])
    mine = [item.record for item in read_record_files(yours)]
    theirs = [item.record for item in read_record_files(published)]
    metric = summary["primary_metric"]
    their_cells = {(cell.method, cell.batch_size): cell for cell in aggregate(theirs, metric)}
    my_keys, their_keys = _config_keys(group_by_cell(mine)), _config_keys(group_by_cell(theirs))
    rows = []
    for cell in aggregate(mine, metric):
        key = (cell.method, cell.batch_size)
        other = their_cells.get(key)
        rows.append(
            CellComparison(
                method=cell.method,
                batch_size=cell.batch_size,
                yours=cell.mean,
                published=None if other is None else other.mean,
                half_width=half_width,
                verdict=_verdict(cell, other, half_width),
                same_config=other is not None and my_keys[key] == their_keys.get(key),
            )
        )
    return rows


def comparison_lines(yours: str | os.PathLike[str], published: str | os.PathLike[str]) -> list[str]:
    """The end-of-job lines: a heading, one line per cell, and the count that agrees."""
    rows = compare_with_published(yours, published)
    if not rows:
        return []
    summary = json.loads((Path(published) / REPORT_FILES["summary"]).read_text(encoding="utf-8"))
    metric, band = summary["primary_metric"], fmt_number(rows[0].half_width, strip=True)
    lines = [
        f"compared with the published records in {published} ({metric}; a cell agrees when the "
        f"two means are within the published band ±{band}):"
    ]
    for row in rows:
        published_text = "-" if row.published is None else f"{fmt_number(row.published)} ± {band}"
        note = "" if row.same_config or row.verdict == "not published" else " (other config)"
        lines.append(
            f"  {row.method} b={row.batch_size}: yours {fmt_number(row.yours)}, published "
            f"{published_text}: {row.verdict}{note}"
        )
    compared = [row for row in rows if row.verdict != "not published"]
    agreeing = sum(row.verdict in ("agrees", "both diverged") for row in compared)
    lines.append(f"  {agreeing} of {len(compared)} compared cells agree with the published ones")
    return lines
