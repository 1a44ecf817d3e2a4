"""The committed reports are exactly what the report code makes of the committed records.

Every ``results/*/*`` folder with records (as git tracks them), every budget of a budget sweep
(``results/*/*/E*``) and every cell of a warmup grid (``results/*/warmup_grid/lr=*/*``) is copied
to a temporary folder and regenerated with ``reproduce/report.py``; every generated file must
equal the committed one, and so must a budget sweep's budgets.md/json and a grid's
warmup_grid.md/json. This
guards refactorings of reproduce/harness/report/ (output byte-identical before and after) and
catches a report change committed without regenerating results/.

Markdown and JSON are compared byte for byte. PNGs are compared by their decoded pixels: the PNG
bytes are stable on one installation (regenerating here gives the committed bytes), but they are
zlib-compressed by the imaging library matplotlib writes through, whose zlib build the project
does not pin, and another compressor gives other bytes for the same image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from test_readme_results import REPO, tracked_results

from reproduce.harness import report
from reproduce.harness.cli.report import main as main_report

#: Results folders: a sweep's, a budget sweep's budgets, a warmup grid's cells.
FOLDER_PATTERNS = ("*/*/runs", "*/*/E*/runs", "*/warmup_grid/lr=*/*/runs")
#: Files a budget sweep's or a warmup grid's root holds, beside its folders' reports.
ROOT_FILES = {
    "*/*/E*/runs": ("budgets.md", "budgets.json"),
    "*/warmup_grid/lr=*/*/runs": ("warmup_grid.md", "warmup_grid.json"),
}


def committed_folders(results: Path) -> list[Path]:
    return sorted(
        runs.parent
        for pattern in FOLDER_PATTERNS
        for runs in results.glob(pattern)
        if any(runs.glob("*.json"))
    )


def committed_root_files(results: Path) -> list[Path]:
    """budgets.md/json of every budget sweep, warmup_grid.md/json of every warmup grid."""
    roots = {
        (
            runs.parent.parent.parent if "lr=" in runs.parent.parent.name else runs.parent.parent,
            files,
        )
        for pattern, files in ROOT_FILES.items()
        for runs in results.glob(pattern)
        if any(runs.glob("*.json"))
    }
    return sorted(root / name for root, files in roots for name in files)


def test_regenerating_the_committed_reports_gives_the_committed_files(tmp_path, monkeypatch):
    results = tracked_results(tmp_path)
    folders = committed_folders(results)
    if not folders:
        pytest.skip("no committed results/*/*/runs records in this checkout")
    monkeypatch.chdir(results.parent)  # the provenance header names `results/EXPERIMENT/PRESET`
    assert main_report([]) == 0
    compared = 0
    for folder in folders:
        committed_folder = REPO / folder.relative_to(results.parent)
        for relative in report.REPORT_FILES.values():
            fresh, committed = folder / relative, committed_folder / relative
            assert committed.is_file(), f"{committed} is not committed"
            if committed.suffix == ".png":
                fresh_pixels, committed_pixels = imread(fresh), imread(committed)
                assert fresh_pixels.shape == committed_pixels.shape, fresh
                assert np.array_equal(fresh_pixels, committed_pixels), f"{fresh} differs"
            else:
                assert fresh.read_bytes() == committed.read_bytes(), (
                    f"{committed} is not what `python reproduce/report.py` makes of its records"
                )
            compared += 1
    assert compared == len(folders) * len(report.REPORT_FILES)
    for fresh in committed_root_files(results):
        committed = REPO / fresh.relative_to(results.parent)
        assert committed.is_file(), f"{committed} is not committed"
        assert fresh.read_bytes() == committed.read_bytes(), (
            f"{committed} is not what `python reproduce/report.py` makes of its records"
        )
