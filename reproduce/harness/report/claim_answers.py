"""The README's answer to each paper claim in words: one short paragraph per claim, generated.

It reads only generated reports: every budget sweep's ``budgets.json`` (``budget`` and
``full_budget``; the claim at each epoch
budget, against that budget's base-batch band) and the ``summary.json`` / ``paper_diff.json`` of
every ``results/*/{full,proxy}`` folder (the claim at the preset's own budget), plus the claim
batch's records for their step counts, and every warmup grid's ``warmup_grid.json`` (what decides
DATE vs sqrt: the warmup length, per base lr). A claim is

- **reproduced here** when DATE keeps the base band at the claim's scale in some setting that is
  not a proxy;
- **not reproduced here** when settings that are not proxies judged it and DATE kept the band in
  none (with the largest budget run, since a longer budget may still change it);
- **open** when only a proxy at small scale judged it, or nothing did.

Where DATE loses to another rule, the paragraph shows it the same way as where it wins: every
rule measured at the claim's scale is listed beside DATE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .formatting import fmt_number
from .warmup_grid import grid_answer

CLAIM_ANSWERS_BEGIN = "<!-- answers:begin -->"
CLAIM_ANSWERS_END = "<!-- answers:end -->"

#: The rules shown beside DATE at the claim's scale, in this order, when they were measured.
COMPARED_METHODS = ("date", "sqrt", "linear")


@dataclass
class Evidence:
    """What one sweep says about a claim: its line, whether DATE kept the band, and its scale."""

    line: str
    proxy: bool
    judged: bool
    kept: bool
    largest_epochs: float | None = None


@dataclass
class Claim:
    text: str
    status: str
    evidence: list[Evidence] = field(default_factory=list)


def _band_text(mean: float, half_width: float, n_seeds: int) -> str:
    return f"{fmt_number(mean)} ± {fmt_number(half_width, 2, strip=True)} ({_seeds(n_seeds)})"


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _cell(method: str, mean: float | None, n: int, diverged: int) -> str:
    if n == 0:
        return f"{method} not run"
    if mean is None:
        return f"{method} diverged ({diverged} of {n})"
    text = f"{method} {fmt_number(mean)} ({_seeds(n - diverged)}"
    return text + (f", {diverged} diverged)" if diverged else ")")


def _training_set(runs: Path) -> str | None:
    """How much training data the records in ``runs`` read ("100,000 training tokens"), so a
    sweep on a slice says so in its own line (None when no record names it)."""
    for path in sorted(runs.glob("*.json")):
        data = json.loads(path.read_text("utf-8")).get("data") or {}
        for key, unit in (("train_tokens", "tokens"), ("train_examples", "examples")):
            if isinstance(data.get(key), int):
                return f"{data[key]:,} training {unit}"
    return None


def _claim_steps(runs: Path, batch_size: int) -> int | None:
    """The step count of the claim batch's DATE runs in ``runs`` (None when none is recorded)."""
    for path in sorted(runs.glob(f"date_b{batch_size}_s*.json")):
        steps = json.loads(path.read_text("utf-8")).get("total_steps")
        if steps:
            return int(steps)
    return None


def _trend(budgets: Sequence[Mapping[str, Any]], scale_factor: float) -> str:
    """Each compared method's mean at the claim's scale over the budgets, so a reader sees
    whether a "no" is still rising with the budget or has levelled off below the band."""
    parts = []
    for method in COMPARED_METHODS:
        values = []
        for budget in budgets:
            at = budget["at_claim"].get(method) or {}
            if not at.get("n"):
                values.append("not run")
            elif at["mean"] is None:
                values.append("diverged")
            else:
                some = f" ({at['diverged']} of {at['n']} diverged)" if at.get("diverged") else ""
                values.append(fmt_number(at["mean"]) + some)
        if any(value != "not run" for value in values):
            parts.append(f"{method} {' / '.join(values)}")
    epochs = " / ".join(f"{budget['epochs']:g}" for budget in budgets)
    higher_is_better = budgets[-1]["band"]["mode"] == "max"
    sign = -1 if higher_is_better else 1
    edges = " / ".join(
        fmt_number(budget["band"]["mean"] + sign * budget["band"]["half_width"])
        for budget in budgets
    )
    return (
        f"Over the budgets at x{scale_factor:g} (E = {epochs}): {'; '.join(parts)}; the base "
        f"band's {'lower' if higher_is_better else 'upper'} edge {edges}."
    )


def _budget_evidence(root: Path) -> tuple[str, Evidence]:
    tables = json.loads((root / "budgets.json").read_text("utf-8"))
    claim = tables["claim"]
    budgets = [b for b in tables["budgets"] if b["at_claim"].get(claim["method"], {}).get("n")]
    experiment = f"{tables['experiment']} / {root.name}"
    tuned = any(b.get("tuned") for b in tables["budgets"])
    recipe = "the base lr tuned on validation for each" if tuned else "the base recipe not tuned"
    if not budgets:
        line = f"`{experiment}` budget sweep: the claim's scale is not run at any budget yet."
        return claim["text"], Evidence(line, proxy=False, judged=False, kept=False)
    kept = [b["epochs"] for b in budgets if b["at_claim"][claim["method"]]["keeps"]]
    largest = budgets[-1]
    at = largest["at_claim"]
    cells = ", ".join(
        _cell(method, at[method]["mean"], at[method]["n"], at[method]["diverged"])
        for method in COMPARED_METHODS
        if method in at
    )
    steps = _claim_steps(root / largest["folder"] / "runs", largest["claim_batch"])
    scale = f"x{claim['scale_factor']:g} (batch {largest['claim_batch']}" + (
        f", {steps} steps)" if steps else ")"
    )
    epochs = ", ".join(f"{b['epochs']:g}" for b in budgets)
    band = largest["band"]
    if kept:
        outcome = f"DATE keeps the base band from E = {min(kept):g}"
    else:
        outcome = f"DATE keeps the base band at no budget up to E = {largest['epochs']:g}"
    data = _training_set(root / largest["folder"] / "runs")
    line = (
        f"`{experiment}` budget sweep (E = {epochs}; {data + '; ' if data else ''}{recipe}): "
        f"{outcome}. At E = {largest['epochs']:g} and {scale}: {cells}; base band "
        f"{_band_text(band['mean'], band['half_width'], band['n_seeds'])}."
    )
    if len(budgets) > 1:
        line += f" {_trend(budgets, claim['scale_factor'])}"
    return claim["text"], Evidence(
        line, proxy=False, judged=True, kept=bool(kept), largest_epochs=largest["epochs"]
    )


def _preset_evidence(folder: Path) -> Iterable[tuple[str, Evidence]]:
    summary = json.loads((folder / "summary.json").read_text("utf-8"))
    diff = json.loads((folder / "paper_diff.json").read_text("utf-8"))
    where = f"`{summary['experiment']} / {summary['preset']}`"
    for row in diff["rows"]:
        if row["kind"] != "claim" or row["n"] == 0:
            continue
        at_scale = {
            aggregate["method"]: aggregate
            for aggregate in summary["aggregates"]
            if aggregate["batch_size"] == row["batch_size"] and aggregate["metric"] == row["metric"]
        }
        cells = ", ".join(
            _cell(method, at["mean"], at["n"], at["n_diverged"])
            for method in COMPARED_METHODS
            if (at := at_scale.get(method))
        )
        if row["mode"] == "max":
            kept = row["ours"] is not None and row["ours"] >= row["target"] - row["tolerance"]
        else:
            kept = row["ours"] is not None and row["ours"] <= row["target"] + row["tolerance"]
        kept = kept and not row["n_diverged"]
        band = _band_text(row["target"], row["tolerance"], len(diff["band"]["seeds"]))
        proxy = bool(row.get("proxy"))
        steps = _claim_steps(folder / "runs", row["batch_size"])
        scale = f"x{row['scale_factor']:g} (batch {row['batch_size']}" + (
            f", {steps} steps)" if steps else ")"
        )
        label = f" ({row['proxy']})" if proxy else ""
        line = (
            f"{where}{label}: at {scale}: {cells}; base band {band}: DATE "
            f"{'inside' if kept else 'outside'} the band."
        )
        yield row["what"], Evidence(line, proxy=proxy, judged=True, kept=kept)


def collect_claims(results_root: Path) -> list[Claim]:
    """Every claim some report judges, with its evidence: budget sweeps first, then the
    presets in the paper's setting, then the proxies."""
    results_root = Path(results_root)
    found: dict[str, list[Evidence]] = {}
    for budgets in sorted(results_root.glob("*/*/budgets.json")):
        text, evidence = _budget_evidence(budgets.parent)
        found.setdefault(text, []).append(evidence)
    for preset in ("full", "proxy"):
        for summary in sorted(results_root.glob(f"*/{preset}/summary.json")):
            for text, evidence in _preset_evidence(summary.parent):
                found.setdefault(text, []).append(evidence)
    claims = []
    for text, evidence in found.items():
        evidence.sort(key=lambda item: item.proxy)
        claims.append(Claim(text, _status(evidence), evidence))
    return claims


def _status(evidence: list[Evidence]) -> str:
    real = [item for item in evidence if item.judged and not item.proxy]
    if any(item.kept for item in real):
        return "**reproduced here**"
    if real:
        budgets = [item.largest_epochs for item in real if item.largest_epochs is not None]
        longest = f" at any budget run (up to E = {max(budgets):g} epochs)" if budgets else ""
        return f"**not reproduced here**{longest}"
    if any(item.judged for item in evidence):
        return "**open**: judged only on a proxy at small scale, not the paper's setting"
    return "**open**: not run"


def claim_answers_section(results_root: Path, details: str = "docs/results.md") -> str:
    """One paragraph per claim: its status, then one line per sweep that judged it; then one
    paragraph per warmup grid."""
    intro = (
        "<!-- Generated by `python reproduce/report.py --readme` from results/*/*/budgets.json, "
        "results/*/full, results/*/proxy and results/*/warmup_grid: do not edit. -->"
    )
    claims = collect_claims(results_root)
    grids = [
        json.loads(path.read_text("utf-8"))
        for path in sorted(Path(results_root).glob("*/warmup_grid/warmup_grid.json"))
    ]
    if not claims and not grids:
        return f"{intro}\nNo claim is judged yet: no results/*/*/ folder has a report."
    paragraphs = [intro]
    for claim in claims:
        lines = [f"**{claim.text}**: {claim.status}."]
        lines += [f"- {item.line}" for item in claim.evidence]
        paragraphs.append("\n".join(lines))
    for tables in grids:
        paragraphs.append(
            f"**What decides DATE vs sqrt at x{tables['scale']}** (`{tables['experiment']}` "
            f"warmup grid: batch {tables['batch_size']}, E = {tables['epochs']:g}, sqrt's peak "
            f"lr with warmup m x w0; m = 1 is sqrt's warmup, m = {tables['scale']} DATE's; one "
            f"row per base lr of the tuning grid, none re-tuned): {grid_answer(tables)}"
        )
    paragraphs.append(
        f"The tables behind each line, and every run's provenance: [{details}]({details})."
    )
    return "\n\n".join(paragraphs)
