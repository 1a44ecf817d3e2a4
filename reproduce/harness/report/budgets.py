"""The budget report: steps to result and the paper's claim at every epoch budget.

Reads the budget folders ``OUT/E{E}`` of a budget sweep (``sweep/budgets.py``) and writes, in
``OUT``:

- ``budgets.md`` / ``budgets.json``: for each budget, the tuned base recipe, the base-batch band
  and, for every method, its result at the claim's scale (x64 for the LSTM claim) with the
  verdict; the one-line answer per method: the smallest budget on the grid at which it keeps the
  base band at that scale, or "none up to E"; the steps-to-result table;
- ``plots/steps_to_result.png``: steps to reach the experiment's time-to-target validation
  metric vs batch size, log-log, one line per method, with the perfect-scaling line;
- in budgets.md, B_simple per budget beside each method's largest batch keeping the band, and
  the critical batch fitted to each method's steps-to-result points by S = S_min (1 + B_crit /
  B) (McCandlish et al. 2018; ``date.advise.fit_critical_batch``);
- in budgets.md, what each budget cost (the records' wall time) and the preset's budgets not yet
  run projected from the longest one run.

Steps to result follow Shallue et al. 2018 ("Measuring the Effects of Data Parallelism on Neural
Network Training", Fig. 1): for each method and batch, the fewest training steps at which the
validation metric reaches the target, over every budget run. A budget counts for a cell only if
every seed of that cell reached the target there, and its value is the slowest seed's steps (so
that one lucky seed does not decide it). Step speed-up is steps(base batch) / steps(batch);
perfect scaling is a speed-up of k; a method "stays within 2x of perfect scaling" up to the
largest batch B such that at every batch up to B, steps(B) <= 2 x steps(base) / k.
"""

from __future__ import annotations

import io
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tabulate import tabulate

from date.advise import fit_critical_batch

from ..core.divergence import Divergence
from ..core.io import atomic_write, atomic_write_json, atomic_write_text
from ..core.targets import Claim, Target, meets
from .band import keeps_band, tolerance_band
from .first_contact import duration
from .noise import (
    breaking_point_cell,
    breaking_points,
    estimate_source,
    format_noise,
    noise_by_batch,
)
from .record_files import RecordFile, read_record_files, sweep_info
from .run_provenance import provenance, provenance_line

#: A method stays "near perfect scaling" while its steps are within this factor of perfect.
PERFECT_SCALING_SLACK = 2.0
COMMAND = "python reproduce/report.py {out}"


class PresetFacts(Protocol):
    """What the budget report reads of a preset (``run.experiment.Preset`` has it)."""

    @property
    def time_to_target(self) -> Target | None: ...

    @property
    def budgets(self) -> Sequence[float]: ...


class BudgetedExperiment(Protocol):
    """What the budget report reads of an experiment (``run.experiment.Experiment`` has it). The
    report layer reads records and these facts only; it does not import the experiment model."""

    @property
    def name(self) -> str: ...

    @property
    def claims(self) -> Sequence[Claim]: ...

    @property
    def time_to_target(self) -> Target | None: ...

    @property
    def divergence(self) -> Divergence | None: ...

    @property
    def band_floor(self) -> float: ...

    @property
    def presets(self) -> Mapping[str, PresetFacts]: ...


def recorded_budgets(out_dir: Path) -> list[tuple[float, Path]]:
    """(E, folder) of every budget folder ``OUT/E{E}`` under ``out_dir`` holding run records,
    by E."""
    found = []
    for folder in Path(out_dir).glob("E*"):
        if (folder / "runs").is_dir() and any((folder / "runs").glob("*.json")):
            try:
                found.append((float(folder.name[1:]), folder))
            except ValueError:
                continue
    return sorted(found)


def _cell_runs(
    records: Sequence[Mapping[str, Any]], method: str, batch: int
) -> list[Mapping[str, Any]]:
    return [r for r in records if r["method"] == method and r["batch_size"] == batch]


def steps_to(run: Mapping[str, Any], target: Target | None) -> int | None:
    """The first evaluated step at which a run's validation metric meets ``target`` (from its
    evaluations, so a preset may judge by its own target); the recorded ``steps_to_target``
    without one."""
    if target is None:
        return run.get("steps_to_target")
    for entry in run.get("evals") or []:
        value = (entry.get("metrics") or {}).get(target.metric)
        if value is not None and meets(value, target.value, target.mode):
            return int(entry["step"])
    return None


def cell_steps(runs: Sequence[Mapping[str, Any]], target: Target | None = None) -> int | None:
    """Steps to the target of a cell at one budget: the slowest seed's, or None unless every
    seed reached it."""
    steps = [steps_to(run, target) for run in runs]
    if not steps or any(step is None for step in steps):
        return None
    return max(steps)


def budget_target(experiment: BudgetedExperiment, preset: str | None) -> Target | None:
    """The steps-to-result target: the budget preset's own (a data slice reaches other values),
    else the experiment's time-to-target."""
    settings = experiment.presets.get(preset) if preset else None
    if settings is not None and settings.time_to_target is not None:
        return settings.time_to_target
    return experiment.time_to_target


def budget_cost(
    record_files: Sequence[RecordFile],
    tuning_dir: Path,
    batches: Sequence[int],
    divergence: Divergence | None = None,
) -> dict[str, Any]:
    """What a budget cost on the machine that ran it, from its records' ``wall_seconds``: the
    runs trained and their summed wall time (``provenance``, over the sweep's ``record_files``
    and the tuning points' records in ``tuning_dir``), and the median run at each of
    ``batches``. Left out of the medians: a run resumed from a checkpoint (its wall time covers
    only its last part) and one stopped as diverged (it did not run its budget)."""
    files = list(record_files)
    for point in sorted((tuning_dir / "points").glob("*")):
        if (point / "runs").is_dir():
            files += read_record_files(point, divergence)
    trained = [item.record for item in files if not item.record.get("same_run_as")]
    medians = {}
    for batch in batches:
        whole = [
            r["wall_seconds"]
            for r in trained
            if r["batch_size"] == batch
            and r.get("wall_seconds") is not None
            and r["status"] == "ok"
            and not r.get("resumed_from_step")
        ]
        medians[str(batch)] = round(statistics.median(whole), 3) if whole else None
    counted = provenance(files)
    return {
        "trained_runs": counted["trained_runs"],
        "wall_seconds_total": counted["wall_seconds_total"],
        "median_run_seconds": medians,
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def budget_tables(out_dir: Path, experiment: BudgetedExperiment) -> dict[str, Any]:
    """Everything the budget report shows, computed from the records (also budgets.json)."""
    claim = experiment.claims[0] if experiment.claims else None
    budgets = []
    steps: dict[tuple[str, int], list[tuple[float, int]]] = {}  # (method, batch) -> (E, steps)
    files = []
    methods: list[str] = []
    batches: list[int] = []
    base_batch = None
    target = experiment.time_to_target
    for epochs, folder in recorded_budgets(out_dir):
        record_files = read_record_files(folder, experiment.divergence)
        files += record_files
        records = [item.record for item in record_files]
        target = budget_target(experiment, records[0].get("preset"))
        info = sweep_info(records)
        base_batch = info.base_batch_size
        band = tolerance_band(records, base_batch, experiment.band_floor)
        methods = sorted({*methods, *(r["method"] for r in records)})
        batches = sorted({*batches, *(r["batch_size"] for r in records)})
        tuning = report_tuning(folder / "tuning")
        at_claim = {}
        claim_batch = base_batch * claim.scale_factor if claim else None
        for method in sorted({r["method"] for r in records}):
            runs = _cell_runs(records, method, claim_batch) if claim else []
            values = [r["final"][band.metric] for r in runs if r["status"] == "ok"]
            at_claim[method] = {
                "n": len(runs),
                "diverged": sum(r["status"] == "diverged" for r in runs),
                "mean": _mean(values),
                "keeps": keeps_band(runs, band),
            }
        for method, batch in {(r["method"], r["batch_size"]) for r in records}:
            value = cell_steps(_cell_runs(records, method, batch), target)
            if value is not None:
                steps.setdefault((method, batch), []).append((epochs, value))
        budgets.append(
            {
                "epochs": epochs,
                "folder": folder.name,
                "tuned": tuning,
                "band": band.to_dict(),
                "claim_batch": claim_batch,
                "at_claim": at_claim,
                "cost": budget_cost(
                    record_files,
                    folder / "tuning",
                    [base_batch, *([claim_batch] if claim else [])],
                    experiment.divergence,
                ),
            }
        )
    best_steps = {
        f"{method}@{batch}": dict(
            zip(("epochs", "steps"), min(found, key=lambda f: f[1]), strict=True)
        )
        for (method, batch), found in sorted(steps.items())
    }
    answers = {}
    for method in methods:
        kept = [b["epochs"] for b in budgets if b["at_claim"].get(method, {}).get("keeps")]
        run_at = [b["epochs"] for b in budgets if b["at_claim"].get(method, {}).get("n")]
        answers[method] = {
            "smallest_budget": min(kept) if kept else None,
            "budgets_run": run_at,
        }
    scaling = {
        method: scaling_summary(method, batches, base_batch, best_steps) for method in methods
    }
    preset = experiment.presets.get(files[0].record.get("preset")) if files else None
    recorded = {budget["epochs"] for budget in budgets}
    not_run = [float(e) for e in (preset.budgets if preset else ()) if float(e) not in recorded]
    return {
        "experiment": experiment.name,
        "claim": claim.to_dict() if claim else None,
        "time_to_target": target.to_dict() if target else None,
        "base_batch_size": base_batch,
        "budgets": budgets,
        "answers": answers,
        "steps_to_target": best_steps,
        "scaling": scaling,
        "methods": methods,
        "batch_sizes": batches,
        "provenance": provenance(files) if files else None,
        "budgets_not_run": not_run,
    }


def report_tuning(tuning_dir: Path) -> dict[str, Any] | None:
    """The tuning a budget's base recipe came from: the chosen point and the grid's values."""
    path = tuning_dir / "tuning.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    return {"best": (summary.get("best") or {}).get("point"), "points": summary.get("points")}


def scaling_summary(
    method: str, batches: Sequence[int], base: int | None, best: Mapping[str, Any]
) -> dict[str, Any]:
    """Step speed-up per batch vs the base batch, and the largest batch within the slack of
    perfect scaling (contiguously from the base batch)."""
    base_steps = (best.get(f"{method}@{base}") or {}).get("steps")
    speedups, near_perfect = {}, None
    contiguous = True
    for batch in batches:
        found = best.get(f"{method}@{batch}")
        if base_steps is None or found is None:
            speedups[str(batch)] = None
            contiguous = False
            continue
        speedup = base_steps / found["steps"]
        speedups[str(batch)] = speedup
        k = batch / base
        if contiguous and speedup * PERFECT_SCALING_SLACK >= k:
            near_perfect = batch
        else:
            contiguous = False
    return {"speedup": speedups, "largest_batch_near_perfect": near_perfect}


def answer_lines(tables: Mapping[str, Any]) -> list[str]:
    """The claim answered in words, one line per method (the README quotes these)."""
    claim = tables["claim"]
    if not claim or not tables["budgets"]:
        return []
    k = claim["scale_factor"]
    lines = []
    for method in tables["methods"]:
        answer = tables["answers"][method]
        if not answer["budgets_run"]:
            continue
        if answer["smallest_budget"] is not None:
            text = f"keeps the base band at x{k} from E = {answer['smallest_budget']:g} epochs"
        else:
            text = f"does not keep the base band at x{k} at any budget up to E = " + (
                f"{max(answer['budgets_run']):g}"
            )
        run_at = ", ".join(f"{epochs:g}" for epochs in answer["budgets_run"])
        lines.append(f"{method}: {text} (run at x{k} at E = {run_at}).")
    return lines


def budgets_markdown(
    tables: Mapping[str, Any], out_dir: Path, divergence: Divergence | None = None
) -> str:
    """budgets.md."""
    name = tables["experiment"]
    claim = tables["claim"]
    target = tables["time_to_target"]
    parts = [
        f"# {name}: results per epoch budget\n",
        f"<!-- Generated by `{COMMAND.format(out=out_dir)}` from the records under E*/runs: "
        "do not edit. -->\n",
        (
            "Each budget E is a full sweep: the base recipe tuned at the base batch for E epochs "
            "(validation only)"
            if any(budget["tuned"] for budget in tables["budgets"])
            else "Each budget E is a full sweep: the preset's base recipe (not tuned), its "
            "schedule stretched to E epochs"
        )
        + ", then scaled to every batch with no re-tuning, for E epochs at every "
        "batch (so batch k x base gets k times fewer steps).\n",
    ]
    if claim:
        parts.append(f"## The claim: {claim['text']} ({claim['source']})\n")
        parts += [f"- {line}" for line in answer_lines(tables)]
        parts.append("")
        rows = []
        for budget in tables["budgets"]:
            band = budget["band"]
            tuned = budget["tuned"]["best"] if budget["tuned"] else None
            row = [
                f"{budget['epochs']:g}",
                ", ".join(f"{k}={v}" for k, v in (tuned or {}).items())
                or ("—" if budget["tuned"] else "not tuned"),
                f"{_fmt(band['mean'])} ± {_fmt(band['half_width'], 2)} (n={band['n_seeds']})",
            ]
            for method in tables["methods"]:
                cell = budget["at_claim"].get(method)
                if not cell or not cell["n"]:
                    row.append("not run")
                    continue
                verdict = {True: "keeps", False: "misses", None: "—"}[cell["keeps"]]
                shown = _fmt(cell["mean"]) if cell["mean"] is not None else "diverged"
                extra = f", {cell['diverged']} diverged" if cell["diverged"] else ""
                row.append(f"{shown} (n={cell['n']}{extra}): {verdict}")
            rows.append(row)
        headers = ["E", "tuned base", "base band", *tables["methods"]]
        first = tables["budgets"][0] if tables["budgets"] else {}
        metric = first.get("band", {}).get("metric", "")
        parts.append(
            f"Final test {metric} at x{claim['scale_factor']} (batch {first.get('claim_batch')}) "
            "per budget, against that budget's base-batch band:\n"
        )
        parts.append(tabulate(rows, headers=headers, tablefmt="github") + "\n")
    if target:
        parts.append(
            f"## Steps to result: validation {target['metric']} "
            f"{'>=' if target['mode'] == 'max' else '<='} {target['value']:g}\n"
        )
        parts.append(
            f"Target: {target['source']} ({target['status']}). A cell is the fewest steps over the "
            "budgets (the budget in brackets) at which every seed reached the target, the slowest "
            "seed counting; `—`: not reached at any budget. Speed-up: steps at the base batch / "
            f"steps. Perfect scaling is a speed-up of k.\n"
        )
        rows = []
        base = tables["base_batch_size"]
        for batch in tables["batch_sizes"]:
            row = [batch, f"{batch / base:g}"]
            for method in tables["methods"]:
                found = tables["steps_to_target"].get(f"{method}@{batch}")
                speedup = tables["scaling"][method]["speedup"].get(str(batch))
                if found is None:
                    row.append("—")
                else:
                    row.append(f"{found['steps']} (E={found['epochs']:g}), x{_fmt(speedup, 3)}")
            rows.append(row)
        parts.append(
            tabulate(rows, headers=["batch", "k", *tables["methods"]], tablefmt="github") + "\n"
        )
        near = [
            f"{method} {tables['scaling'][method]['largest_batch_near_perfect'] or 'none'}"
            for method in tables["methods"]
        ]
        parts.append(
            f"Largest batch within {PERFECT_SCALING_SLACK:g}x of perfect scaling (every batch up "
            f"to it): {'; '.join(near)}.\n"
        )
        parts.append("![steps to result](plots/steps_to_result.png)\n")
    parts.append(budget_noise_section(tables, out_dir, divergence))
    parts.append(budget_cost_section(tables))
    if tables["provenance"]:
        parts.append(provenance_line(tables["provenance"]) + "\n")
    return "\n".join(parts)


def budget_cost_section(tables: Mapping[str, Any]) -> str:
    """What each budget cost on the machine that ran it, and the preset's unrun budgets
    projected from the longest one run (a run's time grows with its epochs at a fixed batch)."""
    budgets = [budget for budget in tables["budgets"] if budget.get("cost")]
    if not budgets:
        return ""
    batches = list(budgets[-1]["cost"]["median_run_seconds"])
    headers = [
        "E",
        "runs trained",
        "wall time summed",
        *[f"median run, batch {b}" for b in batches],
    ]
    rows = [
        [
            f"{budget['epochs']:g}",
            budget["cost"]["trained_runs"],
            duration(budget["cost"]["wall_seconds_total"]),
            *[
                duration(seconds) if seconds is not None else "—"
                for seconds in budget["cost"]["median_run_seconds"].values()
            ],
        ]
        for budget in budgets
    ]
    parts = [
        "## Cost on the machine that ran it\n",
        "The records' wall time (`wall_seconds`): the runs trained per budget (its tuning "
        "points included, a run shared between methods counted once), and the median run at "
        "the base batch and at the claim's batch over the runs that trained their whole budget "
        "in one go (not stopped as diverged, not resumed from a checkpoint). A run may have "
        "shared the machine with other work, so these are upper bounds for it; "
        "`--plan --estimate` times a few steps of your own.\n",
        tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n",
    ]
    longest = budgets[-1]
    for epochs in tables.get("budgets_not_run") or []:
        scale = epochs / longest["epochs"]
        runs = [
            f"{_about(seconds * scale)} at batch {batch}"
            for batch, seconds in longest["cost"]["median_run_seconds"].items()
            if seconds is not None
        ]
        if runs:
            parts.append(
                f"E = {epochs:g} is in the preset but not run: at {scale:g}x E = "
                f"{longest['epochs']:g}'s median runs, one run would take {' and '.join(runs)} "
                f"on this machine (`--set epochs={epochs:g} --plan` counts the runs).\n"
            )
    return "\n".join(parts)


def _about(seconds: float) -> str:
    """A projected time, as rough as a projection is: "about 55 min", "about 2.3 h"."""
    minutes = seconds / 60
    return f"about {minutes:.0f} min" if minutes < 90 else f"about {minutes / 60:.1f} h"


def budget_noise_section(
    tables: Mapping[str, Any], out_dir: Path, divergence: Divergence | None = None
) -> str:
    """The budgets.md section: per budget, B_simple beside each method's largest batch keeping
    the band; per method, its largest batch near perfect scaling and the critical batch fitted to
    its steps-to-result points (the budget report's ``tables``). Records are judged by the
    ``divergence`` rule on read, as everywhere in the report."""
    base = tables["base_batch_size"]
    methods = tables["methods"]
    rows = []
    unmeasured = []
    for budget in tables["budgets"]:
        folder = Path(out_dir) / budget["folder"]
        records = [item.record for item in read_record_files(folder, divergence)]
        by_batch = noise_by_batch(records)
        source = estimate_source(by_batch, base)
        noise = by_batch[source] if source is not None else {}
        if source is None:
            unmeasured.append(f"{budget['epochs']:g}")
        band = tolerance_band(records, base, budget["band"]["floor"])
        points = breaking_points(records, band)
        run_methods = {record["method"] for record in records}
        rows.append(
            [
                f"{budget['epochs']:g}",
                f"{format_noise(noise.get('at_target'))} / {format_noise(noise.get('at_end'))}"
                + (f" (b{source})" if source is not None else ""),
                *[
                    breaking_point_cell(
                        points.get(method),
                        max(r["batch_size"] for r in records if r["method"] == method),
                    )
                    if method in run_methods
                    else "not run"
                    for method in methods
                ],
            ]
        )
    parts = [
        "## Gradient noise scale and the breaking point\n",
        "B_simple (McCandlish et al. 2018, arXiv 1812.06162, Sections 2.2-2.3; the records' "
        "`noise_*` curves) when the runs first reached the target / at their end, median over "
        "the runs of the base batch (or of the smallest batch that measured it, named), beside "
        "each method's largest batch up to which every batch keeps that budget's base band (in "
        "brackets: the first batch that misses it, or that no larger batch was run):\n",
        tabulate(
            rows,
            headers=["E", "B_simple at target / end", *methods],
            tablefmt="github",
            disable_numparse=True,
        )
        + "\n",
    ]
    if unmeasured:
        parts.append(
            f"No run at E = {', '.join(unmeasured)} recorded a noise estimate (—): its records "
            "predate the noise probe, or every step had one gradient size (one process, no "
            "accumulation).\n"
        )
    fitted = []
    for method in methods:
        points = [
            (batch, tables["steps_to_target"][f"{method}@{batch}"]["steps"])
            for batch in tables["batch_sizes"]
            if f"{method}@{batch}" in tables["steps_to_target"]
        ]
        critical = fit_critical_batch(points)
        near = tables["scaling"][method]["largest_batch_near_perfect"]
        fitted.append([method, near or "none", format_noise(critical), len(points)])
    parts.append(
        f"From the steps-to-result table: each method's largest batch within "
        f"{PERFECT_SCALING_SLACK:g}x of perfect scaling, and B_crit fitted to its (batch, steps) "
        "points by S = S_min (1 + B_crit / B) (Section 2.3; least squares on relative error; "
        "needs 2 batches):\n"
    )
    parts.append(
        tabulate(
            fitted,
            headers=["method", "near perfect scaling up to", "fitted B_crit", "batches"],
            tablefmt="github",
            disable_numparse=True,
        )
        + "\n"
    )
    return "\n".join(parts)


def plot_steps_to_result(tables: Mapping[str, Any], path: Path) -> Path:
    """Log-log steps to the target vs batch size per method, with the perfect-scaling line from
    the base batch's steps (of the method that reached the target there in the fewest steps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.0, 4.5))
    base = tables["base_batch_size"]
    base_steps = []
    for method in tables["methods"]:
        points = [
            (batch, tables["steps_to_target"][f"{method}@{batch}"]["steps"])
            for batch in tables["batch_sizes"]
            if f"{method}@{batch}" in tables["steps_to_target"]
        ]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        axis.plot(xs, ys, marker="o", label=method)
        if xs[0] == base:
            base_steps.append(ys[0])
    if base_steps:
        reference = min(base_steps)
        batches = tables["batch_sizes"]
        axis.plot(
            batches,
            [reference * base / batch for batch in batches],
            linestyle="--",
            color="gray",
            label="perfect scaling",
        )
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("batch size")
    target = tables["time_to_target"]
    axis.set_ylabel(
        f"steps to validation {target['metric']} {target['value']:g}" if target else "steps"
    )
    axis.set_title(f"{tables['experiment']}: steps to result over budgets")
    axis.grid(True, which="both", alpha=0.3)
    if base_steps or axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small")
    else:  # no run reached the target at any budget: say so instead of an empty legend
        axis.text(0.5, 0.5, "no run reached the target", ha="center", transform=axis.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    # No "Software" metadata: the PNG does not depend on the matplotlib version string.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    atomic_write(path, lambda stream: stream.write(buffer.getvalue()))
    return path


def write_budget_report(out_dir: Path, experiment: BudgetedExperiment) -> dict[str, Path]:
    """Write budgets.md, budgets.json and plots/steps_to_result.png from the budget folders."""
    out_dir = Path(out_dir)
    tables = budget_tables(out_dir, experiment)
    paths = {
        "markdown": out_dir / "budgets.md",
        "json": out_dir / "budgets.json",
        "plot": out_dir / "plots" / "steps_to_result.png",
    }
    atomic_write_text(paths["markdown"], budgets_markdown(tables, out_dir, experiment.divergence))
    atomic_write_json(paths["json"], {**tables, "answer_lines": answer_lines(tables)})
    plot_steps_to_result(tables, paths["plot"])
    return paths
