"""reproduce/report.py: regenerate every table, plot and paper diff from the run records.

The report layer does the work: it finds the folders (``report/folders.py``), reads and checks
their records, and writes each folder's report, each budget sweep's and each warmup grid's, and
the README's generated sections. This command gives it what only the experiment knows (targets,
claims, divergence rule, band floor, and the preset's plan that coverage is checked against),
and turns problems into exit codes: 2 for a bad record or folder (nothing is written then), 1
for a stale README (--check-readme) or a missed verified target (--fail-on-missed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.io import atomic_write_text
from ..report import read_record_files, sweep_info, write_report
from ..report.budgets import write_budget_report
from ..report.folders import find_folders
from ..report.readme import README_COMMAND, StaleReport, regenerated_pages
from ..report.record_files import RecordFile
from ..report.warmup_grid import write_warmup_grid_report
from ..run.experiment import Experiment
from ..run.registry import experiments
from ..sweep.planning import folder_plan
from .arguments import USAGE_ERROR

#: The fields of a missed target or claim that --json lists and --fail-on-missed prints.
MISSED_KEYS = ("kind", "what", "method", "batch_size", "target", "tolerance", "ours", "source")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reproduce/report.py",
        description="Regenerate tables, paper diffs and plots from run records (results/*/*/runs).",
    )
    parser.add_argument(
        "folders",
        nargs="*",
        type=Path,
        help="result folders (default: every results/*/* with runs/)",
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each folder's paper-diff summary (from its paper_diff.json) as JSON",
    )
    parser.add_argument(
        "--fail-on-missed",
        action="store_true",
        help="exit 1 if any verified target or claim is missed, naming them",
    )
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument(
        "--readme",
        action="store_true",
        help="also rewrite the generated sections of README.md and docs/results.md",
    )
    readme.add_argument(
        "--check-readme",
        action="store_true",
        help="write nothing; exit 1 if the README's results section is not what --readme writes",
    )
    parser.add_argument(
        "--readme-file", type=Path, help="the README (default: README.md beside the results root)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """reproduce/report.py: regenerate every table and plot from the run records; optionally
    print the paper diff as JSON, fail on a missed verified target, or regenerate (or check) the
    README's results section."""
    arguments = build_parser().parse_args(argv)
    readme_file = arguments.readme_file or arguments.results.parent / "README.md"
    if arguments.check_readme:
        if arguments.folders or arguments.json or arguments.fail_on_missed:
            print("error: --check-readme writes nothing and takes no other option", file=sys.stderr)
            return USAGE_ERROR
        return check_readme(readme_file, arguments.results)
    found = find_folders(arguments.folders, arguments.results)
    registered = experiments()
    # Read and check every folder's records before writing anything: a bad record (truncated,
    # not UTF-8, missing a field) is named on one line with exit 2, and no report is touched.
    readable = []
    for folder in found.folders:
        try:
            record_files, experiment = read_folder(folder, registered)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_ERROR
        readable.append((folder, record_files, experiment))
    log = sys.stderr if arguments.json else sys.stdout  # with --json, stdout is the JSON alone
    summaries = []
    for folder, record_files, experiment in readable:
        try:
            paths = write_report(
                folder,
                experiment.targets,
                experiment.claims,
                band_floor(experiment, record_files[0].record["preset"]),
                command=f"python reproduce/report.py {folder}",
                plan=None
                if folder in found.grid_cells
                else folder_plan(experiment, record_files[0].record),
                files=record_files,
                divergence=experiment.divergence,
            )
        except ValueError as error:  # records that contradict the experiment (e.g. its mode)
            print(f"error: {folder}: {error}; its reports were not written", file=sys.stderr)
            return USAGE_ERROR
        print(f"{folder}: wrote {', '.join(sorted(p.name for p in paths.values()))}", file=log)
        summaries.append(folder_summary(folder, paths))
    for root in found.budget_roots:
        record = json.loads(next(root.glob("E*/runs/*.json")).read_text(encoding="utf-8"))
        paths = write_budget_report(root, registered[record["experiment"]])
        print(f"{root}: wrote {', '.join(sorted(p.name for p in paths.values()))}", file=log)
    for root in found.grid_roots:
        record = json.loads(next(root.glob("lr=*/*/runs/*.json")).read_text(encoding="utf-8"))
        experiment = registered[record["experiment"]]
        try:
            paths = write_warmup_grid_report(
                root,
                band_floor(experiment, record["preset"]),
                experiment.divergence,
                f"python reproduce/report.py {root}",
            )
        except ValueError as error:
            print(f"error: {root}: {error}; its grid report was not written", file=sys.stderr)
            return USAGE_ERROR
        print(f"{root}: wrote {', '.join(sorted(p.name for p in paths.values()))}", file=log)
    if arguments.readme:
        try:
            pages = regenerated_pages(readme_file, arguments.results)
            for page, text in pages.items():
                atomic_write_text(page, text)
        except (StaleReport, ValueError, OSError) as error:
            print(f"error: README not written: {error}", file=sys.stderr)
            return 1
        print(f"{', '.join(map(str, pages))}: results section regenerated", file=log)
    missed_total = sum(summary["missed_verified"] for summary in summaries)
    if arguments.json:
        print(
            json.dumps(
                {"folders": summaries, "missed_verified": missed_total}, indent=1, sort_keys=True
            )
        )
    if arguments.fail_on_missed and missed_total:
        print_missed(summaries, missed_total)
        return 1
    return 0


def check_readme(readme_file: Path, results: Path) -> int:
    """--check-readme: 0 when the README's and docs/results.md's generated sections are what
    --readme writes, else 1 naming the stale page and the command that regenerates it."""
    try:
        fresh = regenerated_pages(readme_file, results)
    except (StaleReport, ValueError, OSError) as error:
        print(f"error: {error}; run `{README_COMMAND}`", file=sys.stderr)
        return 1
    stale = [page for page, text in fresh.items() if text != page.read_text("utf-8")]
    if stale:
        print(
            f"error: the results section of {', '.join(map(str, stale))} is stale; "
            f"regenerate it with `{README_COMMAND}` and commit it",
            file=sys.stderr,
        )
        return 1
    print(f"{', '.join(map(str, fresh))}: results section up to date")
    return 0


def read_folder(
    folder: Path, registered: Mapping[str, Experiment]
) -> tuple[list[RecordFile], Experiment]:
    """A folder's records, each judged by its experiment's current divergence rule on read, and
    that experiment; ValueError with the one-line message to show when they cannot be read."""
    if not (folder / "runs").is_dir():
        raise ValueError(f"{folder} has no runs/ folder of records")
    try:
        record_files = read_record_files(folder)
        if record_files:
            name = record_files[0].record["experiment"]
            if name in registered:
                record_files = read_record_files(folder, registered[name].divergence)
            sweep_info([item.record for item in record_files])
    except ValueError as error:
        where = "" if str(error).startswith(str(folder)) else f"{folder}: "
        raise ValueError(
            f"{where}{error}. Nothing was written: restore that record, or move it "
            "out of runs/ (a sweep retrains a run that has no record)"
        ) from None
    if not record_files:
        raise ValueError(f"{folder}/runs holds no records")
    name = record_files[0].record["experiment"]
    if name not in registered:
        raise ValueError(f"{record_files[0].path}: unknown experiment {name!r}")
    return record_files, registered[name]


def band_floor(experiment: Experiment, preset: str) -> float:
    """The tolerance band's floor of the records' preset (a preset may judge by another metric),
    or the experiment's for a preset it no longer has."""
    if preset in experiment.presets:
        return experiment.metric_for(preset)[2]
    return experiment.band_floor


def folder_summary(folder: Path, paths: Mapping[str, Path]) -> dict[str, Any]:
    """A folder's line of the --json output, from the paper_diff.json and summary.json just
    written."""
    diff = json.loads(paths["paper_diff_json"].read_text(encoding="utf-8"))
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    return {
        "folder": folder.as_posix(),
        "experiment": diff["experiment"],
        "preset": diff["preset"],
        "primary_metric": diff["primary_metric"],
        "mode": diff["mode"],
        "verdicts": summary["paper_diff"]["verdicts"],
        "missed_verified": diff["missed_verified"],
        "proxy": summary.get("proxy"),  # a small stand-in for the paper's setting
        # the rows report.missed_verified counts: targets and claims judged "missed"
        "missed": [
            {key: row[key] for key in MISSED_KEYS}
            for row in diff["rows"]
            if row["kind"] in ("target", "claim") and row["verdict"] == "missed"
        ],
    }


def print_missed(summaries: Sequence[Mapping[str, Any]], missed_total: int) -> None:
    """--fail-on-missed: every verified target or claim missed, one line each, on stderr."""
    print(f"error: {missed_total} verified target(s) or claim(s) missed:", file=sys.stderr)
    for summary in summaries:
        for row in summary["missed"]:
            print(
                f"  {summary['folder']}: {row['kind']} {row['what']!r} ({row['method']}, "
                f"batch {row['batch_size']}): ours {row['ours']} vs {row['target']} "
                f"± {row['tolerance']} ({row['source']})"
                + (f" [{summary['proxy']['label']}]" if summary["proxy"] else ""),
                file=sys.stderr,
            )
