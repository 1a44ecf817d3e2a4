"""The committed reports are exactly what the report code makes of the committed records.

Every ``results/*/*`` folder with records (as git tracks them) is copied to a temporary folder and
regenerated with ``reproduce/report.py``; every generated file must equal the committed one. This
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
from reproduce.harness.cli import main_report


def committed_folders(results: Path) -> list[Path]:
    return sorted(runs.parent for runs in results.glob("*/*/runs") if any(runs.glob("*.json")))


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
