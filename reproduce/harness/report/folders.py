"""Which results folders a report covers: sweep folders (``runs/`` of records), budget sweep
roots (``E*/runs``, one folder per epoch budget) and warmup grid roots (``lr=*/*/runs``), named
by the user or found under a results root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .warmup_grid import grid_folders, is_grid_root


@dataclass(frozen=True)
class ReportFolders:
    """The folders to report: every folder of records (a grid's cells last), the budget roots and
    grid roots whose own reports read them, and the grid cells (checked against the grid's plan,
    warmup_grid.md, not their preset's)."""

    folders: list[Path]
    budget_roots: list[Path]
    grid_roots: list[Path]
    grid_cells: frozenset[Path]


def find_folders(given: Sequence[Path], results: Path) -> ReportFolders:
    """The folders named in ``given``, a budget sweep's or a warmup grid's root standing for its
    folders; without any, every ``results/*/*`` and ``results/*/*/E*`` with runs/ and every
    ``results/*/warmup_grid``."""
    # A budget sweep's root (results/EXP/budget) stands for its budget folders (E10, E20, ...)
    budget_roots = [
        folder
        for folder in given
        if not (folder / "runs").is_dir() and any(path.is_dir() for path in folder.glob("E*/runs"))
    ]
    # A warmup grid's root (results/EXP/warmup_grid) stands for its cells (lr=*/*)
    grid_roots = [folder for folder in given if is_grid_root(folder)]
    folders = [
        *(f for f in given if f not in budget_roots and f not in grid_roots),
        *(path.parent for root in budget_roots for path in sorted(root.glob("E*/runs"))),
    ]
    if not given:
        folders = sorted(
            path.parent
            for pattern in ("*/*/runs", "*/*/E*/runs")
            for path in results.glob(pattern)
            if path.is_dir()
        )
        budget_roots = sorted({path.parent.parent for path in results.glob("*/*/E*/runs")})
        grid_roots = sorted(root for root in results.glob("*/warmup_grid") if is_grid_root(root))
    grid_cells = frozenset(cell for root in grid_roots for cell in grid_folders(root))
    return ReportFolders([*folders, *sorted(grid_cells)], budget_roots, grid_roots, grid_cells)
