"""Every table and plot of a sweep, generated only from its run records and its targets.

A sweep trains each (method, batch size, seed) and writes one JSON record per run into
`<out_dir>/runs/*.json` (schema version 1, documented in results/README.md). `write_report`
regenerates, from those records alone plus the experiment's `Target`s and `Claim`s:

    tables.md        provenance, primary metric per batch x method, tolerance band, recipes
    paper_diff.md    each target/claim: reference value, source, status, ours, delta, verdict
    paper_diff.json  the same rows, machine-readable, plus "missed_verified"
    speedup.md       steps and seconds to the time-to-target value, relative to the base batch
    summary.json     everything above as data, plus the list of records (name and sha256)
    plots/*.png      metric vs batch, lr schedules, learning curves

No number in these files is typed by hand: measured values come from the records, reference
values from `Target`s that carry their source. Output is deterministic (no timestamps, sorted
keys) so regenerating from the same records gives byte-identical markdown and JSON, and every
write is atomic (reproduce/harness/core/io.py: temporary file in the same directory, fsync,
os.replace).

This package is the report layer: it reads records (and the experiment's targets, claims and
divergence rule, passed in by the caller) and never imports the sweep or run layers, so a
report can be regenerated without the training code and a change to a report cannot break a
sweep.

The method studied is DATE / LEGW (You et al., "Large-Batch Training for LSTM and Beyond", SC'19;
arXiv 1901.08256): at batch k*B0, lr0*sqrt(k) and warmup epochs w0*k. Its baselines are other
scaling rules of the same base recipe; at k = 1 every rule is the base recipe itself, which is why
base-batch runs are pooled across methods (deduplicated by seed) for the tolerance band.

The modules, in the order the data flows:

    record_files    reading and validating the records (schema version 1)
    aggregation     per (method, batch) cells over seeds; the base batch pooled by seed
    band            the tolerance band at the base batch, and the test of a cell against it
    formatting      number and markdown-cell formatting
    tables          the metric and recipe tables of tables.md
    paper_verdicts  the paper diff: targets and claims with their verdicts
    time_to_target  speedup.md
    plots           plots/*.png
    plan_coverage   which planned runs are recorded, what the missing ones cost
    run_provenance  commit, dates, hardware and record hashes behind a report
    noise           the gradient noise scale beside each method's breaking point
    writer          write_report, which ties them together
    job_summary     summary_lines: the few lines shown at the end of a sweep
    published       a user's sweep next to the published records of its preset
    budgets         budgets.md: a budget sweep's steps to result and claim per epoch budget
    warmup_grid     warmup_grid.md: the warmup grid's one table
    claim_answers   the README's answer to each paper claim in words
    first_contact   the README's first-contact times, from results/first_contact.json
    readme          the README's and docs/results.md's generated sections
    folders         which results folders report.py covers
"""

from __future__ import annotations

from .aggregation import Aggregate, aggregate
from .band import ToleranceBand, tolerance_band
from .formatting import NOT_RECORDED, markdown_text
from .job_summary import summary_lines
from .paper_verdicts import (
    JUDGED_VERDICTS,
    TARGET_PRESET,
    VERDICTS,
    judged_headline,
    missed_verified,
    ours_cell,
    paper_diff,
    paper_diff_markdown,
    target_cell,
    verdict_cell,
    verdict_counts,
)
from .plan_coverage import PlannedRun, coverage, coverage_markdown
from .plots import LOG_AXIS_RATIO, plot_learning_curves, plot_lr_schedules, plot_metric_vs_batch
from .record_files import (
    REQUIRED_FIELDS,
    RUN_STATUSES,
    SCHEMA_VERSION,
    RecordFile,
    SweepInfo,
    divergence_text,
    load_records,
    read_record_files,
    sweep_info,
    validate_record,
)
from .run_provenance import provenance, provenance_line
from .tables import divergence_notes, metric_table, recipe_table
from .time_to_target import speedup_rows, speedup_table
from .writer import DEFAULT_COMMAND, REPORT_FILES, write_report

__all__ = [
    "DEFAULT_COMMAND",
    "JUDGED_VERDICTS",
    "LOG_AXIS_RATIO",
    "NOT_RECORDED",
    "REPORT_FILES",
    "REQUIRED_FIELDS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "TARGET_PRESET",
    "VERDICTS",
    "Aggregate",
    "PlannedRun",
    "RecordFile",
    "SweepInfo",
    "ToleranceBand",
    "aggregate",
    "coverage",
    "coverage_markdown",
    "divergence_notes",
    "divergence_text",
    "judged_headline",
    "load_records",
    "markdown_text",
    "metric_table",
    "missed_verified",
    "ours_cell",
    "paper_diff",
    "paper_diff_markdown",
    "plot_learning_curves",
    "plot_lr_schedules",
    "plot_metric_vs_batch",
    "provenance",
    "provenance_line",
    "read_record_files",
    "recipe_table",
    "speedup_rows",
    "speedup_table",
    "summary_lines",
    "sweep_info",
    "target_cell",
    "tolerance_band",
    "validate_record",
    "verdict_cell",
    "verdict_counts",
    "write_report",
]
