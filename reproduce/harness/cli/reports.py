"""The reports a sweep writes when it ends, and what the end of a job shows: the sweep layer does
not import the report layer, so the command line hands these writers to it (``REPORTS``).

A results folder's report is checked against its preset's plan (which runs are missing); a budget
sweep's report reads every budget folder; the last lines of a job summarize the folder and put
the user's cells next to the published records of the same preset when there are some.
"""

from __future__ import annotations

from pathlib import Path

from ..report import REPORT_FILES, summary_lines, write_report
from ..report.budgets import answer_lines, budget_tables, write_budget_report
from ..report.published import comparison_lines
from ..sweep.budgets import budget_folder, budgets_of
from ..sweep.planning import preset_plan
from ..sweep.spec import Reports, SweepSpec

PUBLISHED = Path(__file__).resolve().parents[3] / "results"


def folder_report(spec: SweepSpec) -> dict[str, Path]:
    """The report of ``spec.out_dir``, its coverage checked against the preset's runs at the
    sweep's recipe overrides (none when the preset's own runs cannot take them)."""
    experiment = spec.experiment
    try:
        plan = preset_plan(experiment, spec.preset, spec.recipe_overrides)
    except ValueError:  # the preset's own runs cannot take these overrides: no coverage check
        plan = None
    return write_report(
        spec.out_dir,
        experiment.targets,
        experiment.claims,
        experiment.metric_for(spec.preset)[2],
        command=f"python reproduce/report.py {spec.out_dir}",
        plan=plan,
        divergence=experiment.divergence,
    )


def budget_report(spec: SweepSpec) -> dict[str, Path]:
    """The budget report over the budget folders of ``spec.out_dir``."""
    return write_budget_report(spec.out_dir, spec.experiment)


#: What every sweep the command line starts writes when it ends.
REPORTS = Reports(folder=folder_report, budgets=budget_report)


def end_of_job_lines(spec: SweepSpec) -> list[str]:
    """What was learned, in a few lines: per budget of a budget sweep, or of the one sweep."""
    published = PUBLISHED / spec.experiment.name / spec.preset
    if not spec.experiment.presets[spec.preset].budgets:
        if not (spec.out_dir / REPORT_FILES["summary"]).is_file():
            return [f"no report in {spec.out_dir} yet (no run is recorded there)"]
        return summary_lines(spec.out_dir, spec.experiment.divergence) + published_lines(
            spec.out_dir, published
        )
    lines = []
    for epochs in budgets_of(spec):
        folder = budget_folder(spec.out_dir, epochs)
        lines += summary_lines(folder, spec.experiment.divergence)
        lines += published_lines(folder, budget_folder(published, epochs))
    lines += answer_lines(budget_tables(spec.out_dir, spec.experiment))
    lines.append(f"budget report: {spec.out_dir / 'budgets.md'}")
    return lines


def published_lines(out_dir: Path, published: Path) -> list[str]:
    """The user's cells next to the published ones of the same preset, when those exist (and
    are not the folder just written: --out results/... publishes)."""
    if not (published / REPORT_FILES["summary"]).is_file():
        return []
    if out_dir.resolve() == published.resolve():
        return []
    return comparison_lines(out_dir, published)
