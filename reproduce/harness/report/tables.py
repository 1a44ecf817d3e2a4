"""The tables of tables.md: primary metric per batch x method, and the resolved recipes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from .aggregation import Aggregate, aggregate, batches_of, group_by_cell, methods_of
from .formatting import fmt_k, fmt_number, fmt_value, markdown_text
from .record_files import divergence_text, sweep_info


def _cell(agg: Aggregate) -> str:
    """'mean ± std (n=3)', with divergence made explicit."""
    if agg.n == 0:
        return "not run"
    if agg.n_values == 0:
        if agg.n_diverged == agg.n:
            return f"diverged ({agg.n_diverged}/{agg.n})"
        return f"not measured ({agg.n} runs)"
    text = fmt_number(agg.mean)
    if agg.std is not None:
        text += f" ± {fmt_number(agg.std, 2)}"
    text += f" (n={agg.n_values})"
    if agg.n_diverged:
        text += f"; diverged ({agg.n_diverged}/{agg.n})"
    return text


def metric_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the primary metric: batch sizes as rows, methods as columns.

    Cells are 'mean ± sample std (n=ok seeds)'; a cell whose every run diverged reads
    'diverged (n/m)', a partly diverged one appends it; a method not run at a batch reads 'not run'.
    """
    info = sweep_info(records)
    cells = {(agg.method, agg.batch_size): agg for agg in aggregate(records)}
    methods = methods_of(records)
    rows = []
    for batch in batches_of(records):
        row = [str(batch), fmt_k(batch / info.base_batch_size)]
        for method in methods:
            agg = cells.get((method, batch))
            row.append(_cell(agg) if agg else "not run")
        rows.append(row)
    headers = ["batch", "k", *methods]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def divergence_notes(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown list of the diverged runs with the reason each record gives, or "" if none did.

    The metric table shows only "diverged (n/m)"; this says which seed, at which step and why
    (the trainer's divergence rule: a non-finite or blown-up loss, a final metric far worse
    than chance)."""
    diverged = sorted(
        (record for record in records if record["status"] == "diverged"),
        key=lambda record: (record["method"], record["batch_size"], record["seed"]),
    )
    if not diverged:
        return ""
    lines = [
        f"- `{record['method']}`, batch {record['batch_size']}, "
        + markdown_text(divergence_text(record))
        for record in diverged
    ]
    return "Diverged runs (counted in n, never averaged):\n\n" + "\n".join(lines)


def recipe_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the resolved recipe per (method, batch), as the records state it."""
    rows = []
    for (method, batch), runs in group_by_cell(records).items():
        first = min(runs, key=lambda run: run["seed"])
        recipe = first["recipe"]
        rows.append(
            [
                method,
                str(batch),
                fmt_value(recipe.get("lr")),
                fmt_value(recipe.get("warmup_epochs")),
                fmt_value(recipe.get("epochs")),
                fmt_value(recipe.get("decay")),
                str(first["total_steps"]),
                ", ".join(str(run["seed"]) for run in sorted(runs, key=lambda r: r["seed"])),
            ]
        )
    headers = ["method", "batch", "lr", "warmup epochs", "epochs", "decay", "steps", "seeds"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
