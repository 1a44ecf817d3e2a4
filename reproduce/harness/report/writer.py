"""write_report: every report file of a results folder, regenerated from its records alone."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.divergence import Divergence
from ..core.io import atomic_write_text
from ..core.targets import Claim, Target
from .aggregation import aggregate
from .band import tolerance_band
from .formatting import direction_text
from .noise import noise_section
from .paper_verdicts import missed_verified, paper_diff, paper_diff_markdown, verdict_counts
from .plan_coverage import PlannedRun, coverage, coverage_markdown
from .plots import plot_learning_curves, plot_lr_schedules, plot_metric_vs_batch
from .record_files import RecordFile, SweepInfo, read_record_files, sweep_info
from .run_provenance import provenance, provenance_markdown
from .tables import divergence_notes, metric_table, recipe_table
from .time_to_target import speedup_rows, speedup_table, time_targets

DEFAULT_COMMAND = "reproduce.harness.report.write_report(out_dir, targets, claims, band_floor)"


def _json_text(data: Any) -> str:
    # allow_nan=False: the output must be valid JSON for any consumer, not Python's dialect.
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def _header(info: SweepInfo, title: str) -> str:
    heading = f"# {info.experiment} / {info.preset}: {title}\n\n"
    if info.proxy is None:
        return heading
    label = info.proxy["label"]
    return f"{heading}**{label[0].upper()}{label[1:]}**: {info.proxy['setting']}.\n\n"


REPORT_FILES = {
    "tables": "tables.md",
    "paper_diff": "paper_diff.md",
    "paper_diff_json": "paper_diff.json",
    "speedup": "speedup.md",
    "summary": "summary.json",
    "plot_metric_vs_batch": "plots/metric_vs_batch.png",
    "plot_lr_schedules": "plots/lr_schedules.png",
    "plot_learning_curves": "plots/learning_curves.png",
}


def write_report(
    out_dir: str | os.PathLike[str],
    targets: Sequence[Target],
    claims: Sequence[Claim],
    band_floor: float,
    *,
    command: str = DEFAULT_COMMAND,
    plan: Sequence[PlannedRun] | None = None,
    files: Sequence[RecordFile] | None = None,
    divergence: Divergence | None = None,
) -> dict[str, Path]:
    """Regenerate every table, plot and summary of `<out_dir>` from `<out_dir>/runs/*.json`.

    `targets`/`claims` come from the experiment, `band_floor` is its tolerance-band floor, and
    `command` is what the provenance header names as the regenerating command (the CLI passes its
    own command line). With `plan` (every run of the records' preset), the tables and summary also
    say which planned runs are missing and estimate their training time (`coverage`). `files` are
    the folder's records if the caller has already read them (`read_record_files(out_dir,
    divergence)`); otherwise they are read here and judged by `divergence`, the experiment's
    current divergence rule (an old "ok" record it finds diverged is shown as diverged).
    Every text is computed before the first file is written, so bad records (ValueError) leave
    the folder as it was; each write is atomic and the text output is deterministic. Returns
    {name: path} for the files listed in REPORT_FILES.
    """
    out = Path(out_dir)
    files = read_record_files(out, divergence) if files is None else list(files)
    records = [item.record for item in files]
    if not records:
        raise ValueError(f"no run records in {out / 'runs'}")
    info = sweep_info(records)
    band = tolerance_band(records, info.base_batch_size, band_floor)
    prov = provenance(files)
    head = provenance_markdown(prov, command)
    cov = coverage(files, plan, info.preset) if plan is not None else None
    cov_text = "\n\n## Coverage\n\n" + coverage_markdown(cov, prov["device_names"]) if cov else ""
    rows = paper_diff(records, targets, claims, band)
    found_targets = time_targets(records)
    divergences = divergence_notes(records)
    texts: dict[str, str] = {}
    texts["tables"] = (
        _header(info, "results")
        + head
        + f"\n## Final test {info.primary_metric} ({direction_text(info.mode)})\n\n"
        + "Mean ± sample std over ok seeds (n = ok seeds); k = batch / base batch "
        + f"{info.base_batch_size}.\n\n"
        + metric_table(records)
        + (f"\n\n{divergences}" if divergences else "")
        + cov_text
        + "\n\n## Tolerance band\n\n"
        + band.describe()
        + "\n\n## Resolved recipes (first seed of each cell)\n\n"
        + recipe_table(records)
        + noise_section(records, band)
        + "\n"
    )
    texts["paper_diff"] = (
        _header(info, "paper diff") + head + "\n" + paper_diff_markdown(rows, band)
    )
    diff_json: dict[str, Any] = {
        "experiment": info.experiment,
        "preset": info.preset,
        "primary_metric": info.primary_metric,
        "mode": info.mode,
        "band": band.to_dict(),
        "rows": rows,
        "missed_verified": missed_verified(rows),
    }
    if info.proxy is not None:
        diff_json["proxy"] = info.proxy
    texts["paper_diff_json"] = _json_text(diff_json)

    target_text = (
        "Time-to-target value(s) from the records: "
        + (", ".join(f"`{t}`" for t in found_targets) or "none defined")
        + ". Steps/seconds are the first evaluation meeting it, averaged over seeds that reached "
        + "it; speedup = base-batch mean / this mean (> 1 = faster), base batch pooled by seed.\n"
    )
    if len(found_targets) > 1:
        target_text += "\n**Warning: the records disagree on the target; ratios mix targets.**\n"
    texts["speedup"] = (
        _header(info, "time to target")
        + head
        + "\n"
        + target_text
        + "\n"
        + speedup_table(records)
        + "\n"
    )

    summary = {
        "report_version": 1,
        "experiment": info.experiment,
        "preset": info.preset,
        "primary_metric": info.primary_metric,
        "mode": info.mode,
        "base_batch_size": info.base_batch_size,
        "generated_by": command,
        "band": band.to_dict(),
        "aggregates": [agg.to_dict() for agg in aggregate(records)],
        "speedup": speedup_rows(records),
        "time_to_target": [json.loads(t) for t in found_targets],
        "paper_diff": {"verdicts": verdict_counts(rows), "missed_verified": missed_verified(rows)},
        "targets": [target.to_dict() for target in targets],
        "claims": [claim.to_dict() for claim in claims],
        "provenance": prov,
        "coverage": cov,
        "files": {name: relative for name, relative in REPORT_FILES.items()},
    }
    if info.proxy is not None:
        summary["proxy"] = info.proxy
    texts["summary"] = _json_text(summary)

    paths = {name: out / relative for name, relative in REPORT_FILES.items()}
    for name, text in texts.items():
        atomic_write_text(paths[name], text)
    plot_metric_vs_batch(records, band, paths["plot_metric_vs_batch"])
    plot_lr_schedules(records, paths["plot_lr_schedules"])
    plot_learning_curves(records, paths["plot_learning_curves"])
    return paths
