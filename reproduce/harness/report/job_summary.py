"""The few lines a user reads at the end of a sweep (``python reproduce/run.py EXPERIMENT``).

Not the markdown tables: for each method the largest batch up to which it keeps the base-batch
tolerance band (the question of You et al., SC'19: how far can the batch grow without losing
accuracy), each paper claim's verdict in words, and where the report files and plots are.
Everything is read from the folder's records and the files `write_report` has just written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.divergence import Divergence
from ..core.targets import Target
from .aggregation import Aggregate, aggregate, group_by_cell
from .formatting import fmt_k, fmt_number
from .paper_verdicts import judged_headline
from .record_files import divergence_text, read_record_files
from .writer import REPORT_FILES


def _band_reference(band: Mapping[str, Any]) -> Target | None:
    """The base-batch mean with the band as tolerance, as paper_verdicts judges band rows."""
    if band["mean"] is None:
        return None
    return Target(
        metric=band["metric"],
        value=band["mean"],
        mode=band["mode"],
        tolerance=band["half_width"],
        source="this suite's base batch",
        status="suite baseline",
    )


def _at(cell: Aggregate) -> str:
    return f"{cell.batch_size} (x{fmt_k(cell.k)})"


def _outcome(cell: Aggregate, runs: Sequence[Mapping[str, Any]]) -> str:
    """What one (method, batch) cell measured, in words: its mean, or why it has none."""
    if cell.n_diverged:
        first = min((run for run in runs if run["status"] == "diverged"), key=lambda r: r["seed"])
        return f"diverged in {cell.n_diverged} of {cell.n} seeds ({divergence_text(first)})"
    if cell.mean is None:
        return f"no {cell.metric} recorded"
    return fmt_number(cell.mean)


def _method_line(
    method: str,
    cells: Sequence[Aggregate],
    groups: Mapping[tuple[str, int], Sequence[Mapping[str, Any]]],
    reference: Target | None,
    base: int,
) -> str:
    """Largest batch up to which `method` keeps the band: every batch from the base batch up to
    it keeps the base mean within the band, with no diverged seed (the paper-diff rule)."""
    scaled = [cell for cell in cells if cell.batch_size > base]
    if not scaled:
        return f"{method}: only the base batch {base} was run"
    largest = scaled[-1]
    if reference is None:
        return f"{method}: largest batch run {_at(largest)}; not judged (no base-batch band)"
    band = f"{fmt_number(reference.value)} ± {fmt_number(reference.tolerance, strip=True)}"
    keeps = [
        not cell.n_diverged and cell.mean is not None and reference.met(cell.mean)
        for cell in scaled
    ]
    if all(keeps):
        return f"{method}: keeps the base-batch band up to batch {_at(largest)}, its largest run"
    first_miss = keeps.index(False)
    cell = scaled[first_miss]
    miss = f"{_at(cell)}: {_outcome(cell, groups[(method, cell.batch_size)])} vs base {band}"
    if first_miss == 0:
        line = f"{method}: misses the base-batch band already at batch {miss}"
    else:
        line = (
            f"{method}: keeps the base-batch band up to batch {_at(scaled[first_miss - 1])}; "
            f"not at {miss}"
        )
    later = zip(scaled[first_miss + 1 :], keeps[first_miss + 1 :], strict=True)
    again = [cell for cell, kept in later if kept]
    if again:  # a larger batch within the band again: said, not hidden by the first miss
        line += f" (within it again at {', '.join(_at(cell) for cell in again)})"
    if largest is not cell and largest not in again:  # where it ends: methods compare there
        line += f"; at {_at(largest)}: {_outcome(largest, groups[(method, largest.batch_size)])}"
    return line


def _claim_line(row: Mapping[str, Any], largest: Mapping[str, int], base: int) -> str:
    """One paper claim's verdict in words (rows of paper_diff.json, kind "claim"); a proxy's
    records are judged under their label."""
    what = f"paper claim {row['what']!r}" + (
        f", judged on a {row['proxy']}" if row.get("proxy") else ""
    )
    method, k = row["method"], fmt_k(row["k"])
    verdict = row["verdict"]
    if verdict == "not run":
        top = largest.get(method, max(largest.values(), default=base))
        return f"{what}: not run in this preset (largest batch {top} = x{fmt_k(top / base)})"
    if row["n_diverged"]:
        ours = f"diverged in {row['n_diverged']} of {row['n']} seeds"
    elif row["ours"] is None:
        ours = f"no {row['metric']} recorded"
    else:
        ours = fmt_number(row["ours"])
    measured = f"{method} at x{k} {ours}"
    if row["target"] is None:
        return f"{what}: no verified reference ({row['note'] or row['status']}); {measured}"
    band = f"{fmt_number(row['target'])} ± {fmt_number(row['tolerance'], strip=True)}"
    return f"{what}: {verdict}: {measured} vs base {band}"


def summary_lines(
    out_dir: str | os.PathLike[str], divergence: Divergence | None = None
) -> list[str]:
    """The end-of-job summary of the results folder `out_dir`, one string per line.

    Call it after `write_report(out_dir, ...)` with the same `divergence` rule: it reads the
    folder's records (judged by that rule) and the
    summary.json and paper_diff.json just written. Lines: the sweep and its base-batch band;
    per method, the largest batch (and k) up to which it keeps that band, or where it first
    misses it and with what (a mean, or the recorded reason of a divergence); the paper diff's
    judged counts and each claim's verdict in words; the paths of the report files and plots.
    Raises FileNotFoundError if the report has not been written, ValueError on bad records.
    """
    out = Path(out_dir)
    summary = json.loads((out / REPORT_FILES["summary"]).read_text(encoding="utf-8"))
    diff = json.loads((out / REPORT_FILES["paper_diff_json"]).read_text(encoding="utf-8"))
    records = [item.record for item in read_record_files(out, divergence)]
    base, band = summary["base_batch_size"], summary["band"]
    reference = _band_reference(band)
    direction = "higher is better" if band["mode"] == "max" else "lower is better"
    lines = [f"{summary['experiment']} / {summary['preset']}: {len(records)} run records in {out}"]
    proxy = summary.get("proxy")
    if proxy:
        lines.append(f"{proxy['label']}: {proxy['setting']}")
    if reference is None:
        lines.append(f"base batch {base}: no ok run, so no band to judge larger batches by")
    else:
        lines.append(
            f"base batch {base}: {band['metric']} {fmt_number(band['mean'])} ± "
            f"{fmt_number(band['half_width'], strip=True)} (band over {band['n_seeds']} ok "
            f"seed(s), {direction})"
        )
    cells = aggregate(records)
    groups = group_by_cell(records)
    methods = sorted({cell.method for cell in cells})
    for method in methods:
        own = [cell for cell in cells if cell.method == method]
        lines.append("  " + _method_line(method, own, groups, reference, base))
    coverage = summary.get("coverage")
    if coverage and coverage["missing"]:
        lines.append(
            f"partial sweep: {coverage['recorded']} of the {coverage['planned']} planned runs of "
            f"the {coverage['preset']} preset are recorded (tables.md lists the missing ones)"
        )
    headline = judged_headline(summary["paper_diff"]["verdicts"], (proxy or {}).get("label"))
    lines.append("paper diff: " + headline.replace("**", ""))  # plain text, not markdown
    largest = {method: max(c.batch_size for c in cells if c.method == method) for method in methods}
    lines += [
        "  " + _claim_line(row, largest, base) for row in diff["rows"] if row["kind"] == "claim"
    ]
    texts = [name for name in REPORT_FILES.values() if not name.startswith("plots/")]
    plots = [name for name in REPORT_FILES.values() if name.startswith("plots/")]
    lines.append("report: " + ", ".join(str(out / name) for name in texts))
    lines.append("plots: " + ", ".join(str(out / name) for name in plots))
    return lines
