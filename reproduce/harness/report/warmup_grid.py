"""The warmup grid's one table (sweep/warmup_grid.py), generated from its records alone.

Rows: the base lr; columns: the warmup at the claim's batch, as a multiple m of the base warmup
w0 (m = 1 is sqrt scaling's warmup, m = k DATE's); cells: the final test metric at the claim's
batch, mean and every seed, and whether it keeps the base band of that lr (the base batch trained
with that lr and w0: mean ± max(2 x std, floor), report/band.py). Records are read through the
report layer, judged by the experiment's current divergence rule.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..core.divergence import Divergence
from ..core.io import atomic_write_json, atomic_write_text
from ..core.targets import meets
from .band import ToleranceBand, tolerance_band
from .record_files import read_record_files, sweep_info
from .run_provenance import provenance, provenance_line

REPORT_COMMAND = "python reproduce/report.py {root}"


def grid_folders(root: str | os.PathLike[str]) -> list[Path]:
    """The results folders of a grid root (``lr=*/*`` with records), sorted."""
    return sorted(
        path.parent for path in Path(root).glob("lr=*/*/runs") if any(path.glob("*.json"))
    )


def is_grid_root(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a warmup grid's root (it has ``lr=*/*/runs`` folders of records)."""
    return not (Path(folder) / "runs").is_dir() and bool(grid_folders(folder))


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _multiplier_text(multiplier: float, scale: int) -> str:
    names = {1.0: "sqrt's", float(scale): "DATE's"}
    name = names.get(multiplier)
    return f"x{multiplier:g}" + (f" ({name})" if name else "")


def grid_tables(
    root: str | os.PathLike[str], band_floor: float, divergence: Divergence | None = None
) -> dict[str, Any]:
    """Everything the grid report shows, as data (also warmup_grid.json).

    Raises ValueError when the records are not one grid: different experiments, metrics, base
    batches, budgets or base warmups, or a run at the claim's batch whose method is not the
    sqrt lr rule."""
    folders = grid_folders(root)
    if not folders:
        raise ValueError(f"{root}: no lr=*/*/runs folders of records")
    files = [item for folder in folders for item in read_record_files(folder, divergence)]
    records = [item.record for item in files]
    info = sweep_info(records)
    base_batch = info.base_batch_size
    epochs = sorted({record["recipe"]["epochs"] for record in records})
    if len(epochs) != 1:
        raise ValueError(f"{root}: the records disagree on the epoch budget: {epochs}")
    base_runs = [r for r in records if r["batch_size"] == base_batch]
    scaled = [r for r in records if r["batch_size"] != base_batch]
    w0_values = sorted({r["recipe"]["warmup_epochs"] for r in base_runs})
    if len(w0_values) > 1:
        raise ValueError(f"{root}: the base-batch runs disagree on the warmup: {w0_values}")
    batches = sorted({r["batch_size"] for r in scaled})
    if len(batches) > 1:
        raise ValueError(f"{root}: more than one scaled batch: {batches}")
    methods = sorted({r["method"] for r in scaled})
    if any(method not in ("sqrt", "sqrt-nowarmup") for method in methods):
        raise ValueError(f"{root}: the grid trains the sqrt lr rule, found methods {methods}")
    w0 = w0_values[0] if w0_values else None
    batch = batches[0] if batches else None
    scale = batch // base_batch if batch else None
    lrs = sorted({r["recipe"]["lr"] for r in base_runs} | {r["base_recipe"]["lr"] for r in scaled})
    warmups = sorted({r["recipe"]["warmup_epochs"] for r in scaled})

    rows = []
    for lr in lrs:
        lr_base = [r for r in base_runs if r["recipe"]["lr"] == lr]
        band = tolerance_band(lr_base, base_batch, band_floor) if lr_base else None
        cells = {}
        for warmup in warmups:
            runs = sorted(
                (
                    r
                    for r in scaled
                    if r["base_recipe"]["lr"] == lr and r["recipe"]["warmup_epochs"] == warmup
                ),
                key=lambda r: r["seed"],
            )
            cells[f"{warmup:g}"] = _cell(runs, band, info.primary_metric)
        rows.append(
            {
                "lr": lr,
                "band": band.to_dict() if band is not None else None,
                "cells": cells,
            }
        )
    return {
        "experiment": info.experiment,
        "preset": info.preset,
        "primary_metric": info.primary_metric,
        "mode": info.mode,
        "epochs": epochs[0],
        "base_batch_size": base_batch,
        "batch_size": batch,
        "scale": scale,
        "base_warmup_epochs": w0,
        "warmups": [
            {
                "epochs": warmup,
                "multiplier": warmup / w0 if w0 else None,
            }
            for warmup in warmups
        ],
        "rows": rows,
        "provenance": provenance(files),
    }


def _cell(
    runs: Sequence[Mapping[str, Any]], band: ToleranceBand | None, metric: str
) -> dict[str, Any]:
    """One cell: its seeds' values (None for a diverged seed), their mean over ok seeds, and
    whether it keeps the band (every seed ok and the mean within it; None if not decidable)."""
    seeds = [
        {"seed": r["seed"], "value": r["final"][metric] if r["status"] == "ok" else None}
        for r in runs
    ]
    values = [s["value"] for s in seeds if s["value"] is not None]
    mean = statistics.fmean(values) if values else None
    keeps = None
    if runs and band is not None and band.mean is not None:
        all_ok = len(values) == len(runs)
        keeps = all_ok and meets(mean, band.mean, band.mode, band.half_width)
    return {"n": len(runs), "seeds": seeds, "mean": mean, "keeps": keeps}


def _cell_text(cell: Mapping[str, Any]) -> str:
    if not cell["n"]:
        return "not run"
    seeds = ", ".join(
        f"s{s['seed']} {_fmt(s['value'])}" if s["value"] is not None else f"s{s['seed']} diverged"
        for s in cell["seeds"]
    )
    mean = _fmt(cell["mean"]) if cell["mean"] is not None else "diverged"
    verdict = {True: ": keeps", False: ": misses", None: ""}[cell["keeps"]]
    return f"{mean} ({seeds}){verdict}"


def _band_text(band: Mapping[str, Any] | None) -> str:
    if band is None:
        return "not run"
    if band["mean"] is None:
        return f"no ok seed (n={len(band['seeds'])})"
    return f"{_fmt(band['mean'])} ± {_fmt(band['half_width'])} (n={band['n_seeds']})"


def grid_body(tables: Mapping[str, Any]) -> str:
    """What the grid trains, how to read it, and its table (warmup_grid.md and the README's
    results section both show it)."""
    metric, scale = tables["primary_metric"], tables["scale"]
    w0, epochs = tables["base_warmup_epochs"], tables["epochs"]
    batch = tables["batch_size"]
    where = f"batch {batch} (x{scale})" if batch else "the claim's batch (none recorded yet)"
    headers = ["base lr", f"base band (batch {tables['base_batch_size']})"]
    for warmup in tables["warmups"]:
        multiplier = warmup["multiplier"]
        label = _multiplier_text(multiplier, scale) + ", " if multiplier is not None else ""
        headers.append(f"warmup {label}{warmup['epochs']:g} ep")
    rows = [
        [f"{row['lr']:g}", _band_text(row["band"])]
        + [_cell_text(row["cells"][f"{w['epochs']:g}"]) for w in tables["warmups"]]
        for row in tables["rows"]
    ]
    w0_text = f"w0 = {w0:g} epochs" if w0 is not None else "w0 (no base-batch run recorded)"
    return "\n".join(
        [
            f"At {where}, DATE and sqrt scaling share the peak lr (base lr x sqrt(k)) and differ "
            f"only in the warmup: DATE's is w0 x k epochs, sqrt's w0 ({w0_text}). Every cell "
            f"trains the sqrt lr with warmup m x w0, for E = {epochs:g} epochs at every batch, one "
            "row per base lr of the tuning grid (no re-tuning: the lr is the base batch's). "
            f"Cells: final test {metric} at the scaled batch, mean over ok seeds (each seed), and "
            "whether it keeps the base band of that lr (every seed ok and the mean within mean ± "
            "max(2 x std, floor) of the base batch trained with that lr and w0).\n",
            tabulate(rows, headers=headers, tablefmt="github"),
        ]
    )


def grid_markdown(tables: Mapping[str, Any], command: str) -> str:
    """warmup_grid.md: the one table, with what it trains and how to read it."""
    parts = [
        f"# {tables['experiment']}: what decides DATE vs sqrt at x{tables['scale']}\n",
        f"<!-- Generated by `{command}` from the records under lr=*/*/runs: do not edit. -->\n",
        grid_body(tables) + "\n",
    ]
    if tables["provenance"]:
        parts.append(provenance_line(tables["provenance"]) + "\n")
    return "\n".join(parts)


def write_warmup_grid_report(
    root: str | os.PathLike[str],
    band_floor: float,
    divergence: Divergence | None = None,
    command: str | None = None,
) -> dict[str, Path]:
    """Write ``warmup_grid.md`` and ``warmup_grid.json`` into the grid's root."""
    root = Path(root)
    command = command or REPORT_COMMAND.format(root=root.as_posix())
    tables = grid_tables(root, band_floor, divergence)
    paths = {"markdown": root / "warmup_grid.md", "json": root / "warmup_grid.json"}
    atomic_write_text(paths["markdown"], grid_markdown(tables, command))
    atomic_write_json(paths["json"], tables)
    return paths


def grid_records_sha256(root: str | os.PathLike[str]) -> str:
    """The sha256 of the grid's record set, as its warmup_grid.json provenance states it when
    that report is current."""
    folders = grid_folders(root)
    return provenance([item for folder in folders for item in read_record_files(folder)])[
        "records_sha256"
    ]


def grid_answer(tables: Mapping[str, Any]) -> str:
    """The grid in one sentence: which cells keep their base band, and per base lr the best
    warmup next to sqrt's (m = 1) and DATE's (m = k) cells."""
    scale = tables["scale"]
    run = [
        (row, warmup)
        for row in tables["rows"]
        for warmup in tables["warmups"]
        if row["cells"][f"{warmup['epochs']:g}"]["n"]
    ]
    if not run:
        return "no cell at the scaled batch is recorded yet."
    kept = [
        f"lr {row['lr']:g} with m = {warmup['multiplier']:g}"
        for row, warmup in run
        if row["cells"][f"{warmup['epochs']:g}"]["keeps"]
    ]
    head = f"{len(kept)} of the {len(run)} cells run keep their base band" + (
        f" ({', '.join(kept)})" if kept else ""
    )
    sign = 1 if tables["mode"] == "max" else -1
    per_lr = []
    for row in tables["rows"]:
        cells = {
            warmup["multiplier"]: row["cells"][f"{warmup['epochs']:g}"]
            for warmup in tables["warmups"]
            if row["cells"][f"{warmup['epochs']:g}"]["mean"] is not None
        }
        if not cells:
            continue
        best = max(cells, key=lambda m: sign * cells[m]["mean"])
        named = [f"best m = {best:g}: {_fmt(cells[best]['mean'])}"]
        for multiplier, name in ((1.0, "sqrt's"), (float(scale), "DATE's")):
            if multiplier in cells and multiplier != best:
                named.append(f"{name} {_fmt(cells[multiplier]['mean'])}")
        band = row["band"]
        band_text = f"band {_fmt(band['mean'])}" if band and band["mean"] is not None else "no band"
        per_lr.append(f"lr {row['lr']:g} ({band_text}): {', '.join(named)}")
    return head + ". " + "; ".join(per_lr) + "."
