"""The README's results section, generated from the report files of every ``results/*/full``,
``results/*/proxy`` and ``results/*/quick`` folder that has records (the paper's setting, a proxy
of it, then the reduced one), and of every budget sweep.

The section sits between ``README_BEGIN`` and ``README_END``; ``python reproduce/report.py
--readme`` rewrites it and ``--check-readme`` (and tests/test_readme_results.py) compare it with a
fresh one, so a section that no longer matches the records is detected, never hand-edited.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .budget_costs import (
    BUDGET_COSTS_BEGIN,
    BUDGET_COSTS_END,
    budget_cost_pages,
    budget_costs_section,
)
from .claim_answers import CLAIM_ANSWERS_BEGIN, CLAIM_ANSWERS_END, claim_answers_section
from .first_contact import FIRST_CONTACT_BEGIN, FIRST_CONTACT_END, first_contact_section
from .formatting import markdown_text
from .paper_verdicts import judged_headline, ours_cell, target_cell, verdict_cell
from .plan_coverage import coverage_markdown
from .record_files import read_record_files
from .run_provenance import provenance, provenance_line
from .warmup_grid import grid_body, grid_records_sha256
from .writer import REPORT_FILES

README_BEGIN = "<!-- results:begin -->"
README_END = "<!-- results:end -->"
README_COMMAND = "python reproduce/report.py --readme"
#: The presets the README shows, in this order within an experiment: the paper's setting, a proxy
#: of it on a small real task (labelled as such by its records, whose label stands beside every
#: verdict), and the reduced one that fits a small machine (labelled by its heading and records).
README_PRESETS = ("full", "proxy", "quick")
PLOT_LINKS = (
    ("metric vs batch", "plots/metric_vs_batch.png"),
    ("lr schedules", "plots/lr_schedules.png"),
    ("learning curves", "plots/learning_curves.png"),
)


class StaleReport(ValueError):
    """A results folder's generated files are missing or older than its records."""


def folders_with_records(results_root: Path, presets: Sequence[str] = README_PRESETS) -> list[Path]:
    """Every ``<results_root>/<experiment>/<preset>`` whose runs/ holds at least one record, by
    experiment, then in the order of ``presets``."""
    found = [
        runs.parent
        for preset in presets
        for runs in Path(results_root).glob(f"*/{preset}/runs")
        if any(not path.name.endswith(".tmp") for path in runs.glob("*.json"))
    ]
    return sorted(found, key=lambda folder: (folder.parent.name, presets.index(folder.name)))


def _section(text: str, heading_prefix: str) -> tuple[str, str]:
    """The markdown section whose heading starts with ``heading_prefix``, without its heading."""
    lines = text.splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith(heading_prefix)]
    if not starts:
        raise StaleReport(f"no section {heading_prefix!r}")
    body = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("## "):
            break
        body.append(line)
    return lines[starts[0]].lstrip("# ").strip(), "\n".join(body).strip()


def _generated(folder: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """summary.json, paper_diff.json and tables.md of ``folder``, checked against its records."""
    try:
        summary = json.loads((folder / REPORT_FILES["summary"]).read_text("utf-8"))
        diff = json.loads((folder / REPORT_FILES["paper_diff_json"]).read_text("utf-8"))
        tables = (folder / REPORT_FILES["tables"]).read_text("utf-8")
    except FileNotFoundError as error:
        raise StaleReport(f"{folder}: generated file missing ({error.filename})") from None
    current = provenance(read_record_files(folder))["records_sha256"]
    if summary["provenance"]["records_sha256"] != current:
        raise StaleReport(f"{folder}: its generated files are older than its run records")
    return summary, diff, tables


def _uncompared(row: dict[str, Any]) -> bool:
    """A paper reference beside a proxy's records: listed in paper_diff.md, not compared."""
    return bool(row.get("proxy")) and row["kind"] == "target"


def _folder_section(folder: Path, link: str) -> str:
    summary, diff, tables = _generated(folder)
    origin = summary["provenance"]
    heading, metric_table = _section(tables, "## Final test ")
    rows = [
        [
            row["kind"],
            markdown_text(row["what"]),
            str(row["batch_size"]),
            markdown_text(row["method"]),
            target_cell(row),
            ours_cell(row),
            verdict_cell(row),
        ]
        for row in diff["rows"]
        if row["kind"] in ("target", "claim") and not _uncompared(row)
    ]
    uncompared = sum(_uncompared(row) for row in diff["rows"])
    verdict_table = (
        tabulate(
            rows,
            headers=["kind", "what", "batch", "method", "target", "ours", "verdict"],
            tablefmt="github",
            disable_numparse=True,
        )
        if rows
        else "No targets or claims are defined for this experiment."
    )
    if uncompared:  # a proxy's: listed in its paper_diff.md, never set against its records
        verdict_table += (
            f"\n\nThe paper's {uncompared} reference values are listed in "
            f"[paper_diff.md]({link}/paper_diff.md) and never compared with a proxy's records."
        )
    files = " · ".join(
        [
            f"[tables]({link}/tables.md)",
            f"[paper diff]({link}/paper_diff.md)",
            f"[speedup]({link}/speedup.md)",
            *[f"[{label}]({link}/{path})" for label, path in PLOT_LINKS],
        ]
    )
    proxy = summary.get("proxy")
    proxy_lines = [f"**{proxy['label'].capitalize()}**: {proxy['setting']}.", ""] if proxy else []
    headline = judged_headline(summary["paper_diff"]["verdicts"], proxy["label"] if proxy else None)
    return "\n".join(
        [
            f"### {summary['experiment']} / {summary['preset']}",
            "",
            *proxy_lines,
            f"**{heading}**",
            "",
            metric_table,
            "",
            *(
                [coverage_markdown(summary["coverage"], origin["device_names"]), ""]
                if summary.get("coverage")
                else []
            ),
            f"**Paper diff.** {headline}",
            "",
            verdict_table,
            "",
            f"Files: {files}",
            "",
            provenance_line(origin),
        ]
    )


def budget_roots(results_root: Path) -> list[Path]:
    """Every ``<results_root>/<experiment>/<folder>`` with a budget report (budgets.json): the
    ``budget`` preset's, and ``full_budget``'s in the paper's setting."""
    return sorted(path.parent for path in Path(results_root).glob("*/*/budgets.json"))


def _budget_section(root: Path, link: str) -> str:
    """A budget sweep's answer and tables, from its budgets.md / budgets.json (checked to cover
    every budget folder's records)."""
    tables = json.loads((root / "budgets.json").read_text("utf-8"))
    text = (root / "budgets.md").read_text("utf-8")
    recorded = sum(
        len(list((root / b["folder"] / "runs").glob("*.json"))) for b in tables["budgets"]
    )
    folders = sorted(path.parent.name for path in root.glob("E*/runs"))
    if recorded != tables["provenance"]["n_records"] or folders != sorted(
        b["folder"] for b in tables["budgets"]
    ):
        raise StaleReport(f"{root}: budgets.md is older than the records of its budget folders")
    claim_heading, claim = _section(text, "## The claim")
    _, steps = _section(text, "## Steps to result")
    steps = steps.replace("](plots/", f"]({link}/plots/")
    origin = tables["provenance"]
    budgets = ", ".join(
        f"[E = {b['epochs']:g}]({link}/{b['folder']}/tables.md)" for b in tables["budgets"]
    )
    return "\n".join(
        [
            f"### {tables['experiment']} / {root.name}",
            "",
            f"**{claim_heading}**",
            "",
            claim,
            "",
            f"**Steps to result** ({tables['time_to_target']['metric']} target "
            f"{tables['time_to_target']['value']:g}; [budgets.md]({link}/budgets.md))",
            "",
            steps,
            "",
            f"Per budget: {budgets}.",
            "",
            provenance_line(origin),
        ]
    )


def warmup_grid_roots(results_root: Path) -> list[Path]:
    """Every ``<results_root>/<experiment>/warmup_grid`` with a grid report (warmup_grid.json)."""
    return sorted(path.parent for path in Path(results_root).glob("*/warmup_grid/warmup_grid.json"))


def _warmup_grid_section(root: Path, link: str) -> str:
    """A warmup grid's one table, from its warmup_grid.json (checked against its records)."""
    tables = json.loads((root / "warmup_grid.json").read_text("utf-8"))
    if tables["provenance"]["records_sha256"] != grid_records_sha256(root):
        raise StaleReport(f"{root}: warmup_grid.md is older than its records")
    return "\n".join(
        [
            f"### {tables['experiment']} / warmup grid",
            "",
            grid_body(tables),
            "",
            f"Files: [warmup_grid.md]({link}/warmup_grid.md) · per cell: "
            f"[lr=*/*/tables.md]({link})",
            "",
            provenance_line(tables["provenance"]),
        ]
    )


def readme_results_section(results_root: Path, link_prefix: str = "results") -> str:
    """The README's results section (markers excluded), generated from the report files of every
    ``results/*/{full,proxy,quick}`` folder with records (README_PRESETS). Links start with
    ``link_prefix`` (the results folder as seen from the README). Raises StaleReport when a
    folder's report is missing or stale."""
    results_root = Path(results_root)
    folders = folders_with_records(results_root)

    def link(folder: Path) -> str:
        return f"{link_prefix}/{folder.relative_to(results_root).as_posix()}"

    where = ", ".join(
        f"results/*/{preset}"
        for preset in (*README_PRESETS, "budget", "full_budget", "warmup_grid")
    )
    intro = f"<!-- Generated by `{README_COMMAND}` from {where}: do not edit. -->"
    if not folders and not budget_roots(results_root) and not warmup_grid_roots(results_root):
        body = (
            f"No results are recorded yet: no `results/*/{{{','.join(README_PRESETS)}}}/runs/` "
            f"folder holds a run record. Once a sweep's records are committed, "
            f"`{README_COMMAND}` fills this section from them."
        )
        return f"{intro}\n{body}"
    order = {"full": 0, "full_budget": 1, "budget": 2, "warmup_grid": 3, "proxy": 4, "quick": 5}
    ranked = [
        (folder.parent.name, order[folder.name], _folder_section(folder, link(folder)))
        for folder in folders
    ]
    ranked += [
        (root.parent.name, order.get(root.name, order["budget"]), _budget_section(root, link(root)))
        for root in budget_roots(results_root)
    ]
    ranked += [
        (root.parent.name, order["warmup_grid"], _warmup_grid_section(root, link(root)))
        for root in warmup_grid_roots(results_root)
    ]
    return intro + "\n" + "\n\n".join(text for *_, text in sorted(ranked))


def replace_readme_section(readme: str, section: str) -> str:
    """``readme`` with the text between the markers replaced by ``section``."""
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"the README lacks the markers {README_BEGIN} ... {README_END}")
    return readme[: begin + len(README_BEGIN)] + "\n" + section + "\n" + readme[end:]


#: The README's short answer to each claim (``claims_section``); the full results section (its
#: tables, budgets and provenance) lives in docs/results.md between README_BEGIN and README_END.
CLAIMS_BEGIN = "<!-- claims:begin -->"
CLAIMS_END = "<!-- claims:end -->"
RESULTS_PAGE = Path("docs") / "results.md"


def claims_section(results_root: Path, details: str = "docs/results.md") -> str:
    """One row per paper claim of every ``results/*/{full,proxy,quick}`` folder with records:
    the preset, the claim, what we measured and the verdict (from paper_diff.json); ``details``
    links the full section."""
    results_root = Path(results_root)
    intro = f"<!-- Generated by `{README_COMMAND}` from results/*/*: do not edit. -->"
    rows = []
    for folder in folders_with_records(results_root):
        summary, diff, _ = _generated(folder)
        proxy = summary.get("proxy")
        where = f"{summary['experiment']} / {summary['preset']}" + (" (proxy)" if proxy else "")
        rows += [
            [
                where,
                markdown_text(row["what"]),
                target_cell(row),
                ours_cell(row),
                verdict_cell(row),
            ]
            for row in diff["rows"]
            if row["kind"] == "claim"
        ]
    if not rows:
        return f"{intro}\nNo claim is judged yet: no results/*/*/runs/ folder holds a record."
    table = tabulate(
        rows,
        headers=["sweep", "paper claim", "base band", "ours at the claim's scale", "verdict"],
        tablefmt="github",
        disable_numparse=True,
    )
    return f"{intro}\n{table}\n\nEvery table, plot and provenance line: [{details}]({details})."


def replace_section(text: str, section: str, begin: str, end: str) -> str:
    """``text`` with what lies between the markers ``begin`` and ``end`` replaced by
    ``section``."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no markers {begin} ... {end}")
    return text[: start + len(begin)] + "\n" + section + "\n" + text[stop:]


def regenerated_pages(readme_file: Path, results_root: Path) -> dict[Path, str]:
    """Every generated page as ``--readme`` writes it: the README (its claim answers, claims
    table, results section and first-contact times, whichever markers it has),
    docs/results.md beside it when it exists (its results section) and every
    ``results/<experiment>/README.md`` with budget-cost markers (its cost section). Raises
    ValueError when no page has markers, StaleReport on stale reports."""
    import os

    pages = {}
    for page in (readme_file, readme_file.parent / RESULTS_PAGE):
        if page != readme_file and not page.is_file():
            continue
        text = page.read_text("utf-8")
        prefix = Path(os.path.relpath(results_root, page.parent)).as_posix()
        fresh = text
        if README_BEGIN in fresh:
            fresh = replace_readme_section(fresh, readme_results_section(results_root, prefix))
        if CLAIMS_BEGIN in fresh:
            details = Path(os.path.relpath(readme_file.parent / RESULTS_PAGE, page.parent))
            section = claims_section(results_root, details.as_posix())
            fresh = replace_section(fresh, section, CLAIMS_BEGIN, CLAIMS_END)
        if CLAIM_ANSWERS_BEGIN in fresh:
            details = Path(os.path.relpath(readme_file.parent / RESULTS_PAGE, page.parent))
            section = claim_answers_section(results_root, details.as_posix())
            fresh = replace_section(fresh, section, CLAIM_ANSWERS_BEGIN, CLAIM_ANSWERS_END)
        if FIRST_CONTACT_BEGIN in fresh:
            section = first_contact_section(results_root)
            fresh = replace_section(fresh, section, FIRST_CONTACT_BEGIN, FIRST_CONTACT_END)
        if fresh != text or README_BEGIN in text or CLAIMS_BEGIN in text:
            pages[page] = fresh
    for page, experiment in budget_cost_pages(results_root):
        text = page.read_text("utf-8")
        section = budget_costs_section(text, results_root, experiment)
        pages[page] = replace_section(text, section, BUDGET_COSTS_BEGIN, BUDGET_COSTS_END)
    if not pages:
        raise ValueError(
            f"the README lacks the markers {README_BEGIN} ... {README_END} (or {CLAIMS_BEGIN} "
            f"... {CLAIMS_END})"
        )
    return pages
