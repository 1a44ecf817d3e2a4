"""The cost of the budgets a results page proposes (``results/<experiment>/README.md``), generated
from that page's own commands and the experiment's committed full-data records.

The page lists one ``python reproduce/run.py <experiment> ...`` command per budget (its epochs,
batch sizes, methods and seeds). This module writes, between ``BUDGET_COSTS_BEGIN`` and
``BUDGET_COSTS_END``: the steps each run takes (the records' steps per epoch x E, rounded down as
the trainer does), the wall time the committed records measured, the projection of each budget
from that per-step cost, and, kept apart and labelled, a GPU cost under stated assumptions. Nothing
here is typed: a new record or a changed command changes the section on the next
``python reproduce/report.py --readme``.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from .first_contact import duration
from .record_files import RecordFile, read_record_files

BUDGET_COSTS_BEGIN = "<!-- budget-costs:begin -->"
BUDGET_COSTS_END = "<!-- budget-costs:end -->"
#: The preset whose records measure the per-step cost: the paper's setting, on all the data.
MEASURED_PRESET = "full"
#: ASSUMED, not measured (no GPU here): seconds per optimizer step on one GPU, by batch size. A
#: 2 x 200 LSTM (Zaremba et al. 2014's small PTB model) is far too small to fill a GPU, so a step
#: costs a roughly fixed, launch-bound time whatever the batch: 35 time steps x 2 layers of small
#: kernels forward and backward. Users replace it with ``--plan --estimate --device cuda``.
ASSUMED_GPU_STEP_SECONDS: dict[str, dict[int, float]] = {"ptb_small": {20: 0.010, 1280: 0.025}}


@dataclass(frozen=True)
class BudgetCommand:
    """One proposed budget: the run.py command's epochs, batch sizes, methods and seeds."""

    command: str
    epochs: float
    batch_sizes: tuple[int, ...]
    methods: tuple[str, ...]
    seeds: int


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value after ``name`` in ``argv`` (or of ``name=value``), the last one given."""
    found = None
    for index, word in enumerate(argv):
        if word == name and index + 1 < len(argv):
            found = argv[index + 1]
        elif word.startswith(name + "="):
            found = word.split("=", 1)[1]
    return found


def budget_commands(page: str, experiment: str) -> list[BudgetCommand]:
    """Every ``python reproduce/run.py <experiment>`` line of ``page`` that sets ``epochs``, in
    order. Raises ValueError for such a line without --batch-sizes, --methods or --seeds."""
    prefix = f"python reproduce/run.py {experiment} "
    commands = []
    for line in page.splitlines():
        text = line.strip()
        if not text.startswith(prefix):
            continue
        argv = shlex.split(text)
        settings = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--set"]
        epochs = [float(s.split("=", 1)[1]) for s in settings if s.startswith("epochs=")]
        batches, methods, seeds = (
            _option(argv, name) for name in ("--batch-sizes", "--methods", "--seeds")
        )
        if not epochs:
            continue
        if batches is None or methods is None or seeds is None:
            raise ValueError(
                f"{text!r}: a budget command names --batch-sizes, --methods and --seeds"
            )
        commands.append(
            BudgetCommand(
                command=text,
                epochs=epochs[-1],
                batch_sizes=tuple(int(b) for b in batches.split(",")),
                methods=tuple(methods.split(",")),
                seeds=int(seeds),
            )
        )
    return commands


def timed_records(files: Sequence[RecordFile]) -> dict[int, list[RecordFile]]:
    """The records that time a whole run, by batch size: trained in one go (not resumed, whose
    wall time covers only the last part) and not a copy of another run."""
    timed: dict[int, list[RecordFile]] = {}
    for item in files:
        record = item.record
        if record.get("resumed_from_step") or record.get("same_run_as"):
            continue
        if not record.get("wall_seconds") or not record["total_steps"]:
            continue
        timed.setdefault(record["batch_size"], []).append(item)
    return timed


def _seconds_per_step(items: Sequence[RecordFile]) -> float:
    return sum(i.record["wall_seconds"] / i.record["total_steps"] for i in items) / len(items)


def _runs_trained(budget: BudgetCommand, batch: int, base_batch: int) -> int:
    """At the base batch every method is the same recipe (k = 1) and is trained once per seed."""
    return budget.seeds * (1 if batch == base_batch else len(budget.methods))


def budget_costs_section(page: str, results_root: Path, experiment: str) -> str:
    """The generated cost section for ``results_root/experiment/README.md`` (``page``: its text)."""
    intro = (
        f"<!-- Generated by `python reproduce/report.py --readme` from the commands above and "
        f"results/{experiment}/{MEASURED_PRESET}/runs: do not edit. -->"
    )
    budgets = budget_commands(page, experiment)
    if not budgets:
        return f"{intro}\nThe page lists no budget command, so there is no cost to show."
    files = read_record_files(Path(results_root) / experiment / MEASURED_PRESET)
    timed = timed_records(files)
    batches = sorted({b for budget in budgets for b in budget.batch_sizes})
    missing = [b for b in batches if b not in timed]
    if missing:
        return (
            f"{intro}\nNo committed {MEASURED_PRESET} record times batch "
            f"{', '.join(map(str, missing))} on its own, so no cost is shown."
        )
    base_batch = timed[batches[0]][0].record["base_batch_size"]
    per_epoch = {b: timed[b][0].record["steps_per_epoch"] for b in batches}

    def steps(budget: BudgetCommand, batch: int) -> int:
        return math.floor(budget.epochs * per_epoch[batch])

    step_rows = [
        [
            f"{budget.epochs:g}",
            *[str(steps(budget, b)) for b in batches],
            str(sum(_runs_trained(budget, b, base_batch) for b in budget.batch_sizes)),
        ]
        for budget in budgets
    ]
    step_table = tabulate(
        step_rows,
        headers=["E", *[f"batch {b} steps" for b in batches], "runs trained"],
        tablefmt="github",
        disable_numparse=True,
    )
    measured_rows = [
        [
            f"`{experiment}/{MEASURED_PRESET}/runs/{item.path.name}`",
            str(item.record["batch_size"]),
            f"{item.record['micro_batch_size']} x {item.record['accumulation_steps']}",
            str(item.record["total_steps"]),
            duration(item.record["wall_seconds"]),
            f"{item.record['wall_seconds'] / item.record['total_steps']:.3g}",
            str(item.record["env"].get("date", "not recorded"))[:10],
            str(item.record["env"].get("git_commit", "not recorded"))[:7],
        ]
        for b in batches
        for item in sorted(timed[b], key=lambda i: i.path.name)
    ]
    measured_table = tabulate(
        measured_rows,
        headers=[
            "record",
            "batch",
            "micro-batch x accumulation",
            "steps",
            "wall time",
            "s per step",
            "date",
            "commit",
        ],
        tablefmt="github",
        disable_numparse=True,
    )
    hardware = sorted(
        {str(i.record["env"].get("device_name", "not recorded")) for b in batches for i in timed[b]}
    )
    cpu_rate = {b: _seconds_per_step(timed[b]) for b in batches}
    projection = _projection(budgets, batches, base_batch, steps, cpu_rate)
    ratios = "; ".join(
        f"a batch-{b} step costs {cpu_rate[b] / cpu_rate[base_batch]:.0f} times a batch-"
        f"{base_batch} step (k = {b // base_batch})"
        for b in batches
        if b != base_batch
    )
    lines = [
        intro,
        "Steps per run (the records' steps per epoch x E, rounded down as the trainer does) and "
        "the runs each budget trains:",
        "",
        step_table,
        "",
        f"**Measured on this CPU** ({', '.join(hardware)}; a step's wall time "
        "includes the validation passes; longer when the machine ran other work too):",
        "",
        measured_table,
        "",
        f"Per step on this CPU, {ratios}.",
        "",
        "**Projected for this CPU** from those seconds per step (training at the records' "
        "micro-batch; a different micro-batch or a busier machine changes it; "
        "`--plan --estimate` times your own device):",
        "",
        projection,
    ]
    assumed = ASSUMED_GPU_STEP_SECONDS.get(experiment)
    if assumed and all(b in assumed for b in batches):
        rates = ", ".join(f"{assumed[b] * 1000:g} ms a step at batch {b}" for b in batches)
        lines += [
            "",
            f"**Assumed for one GPU (NOT measured: no GPU here).** ASSUMING {rates} (a model "
            "this small is launch-bound, so a step costs about the same whatever the batch); "
            "replace it with `--plan --estimate --device cuda` on your device:",
            "",
            _projection(budgets, batches, base_batch, steps, assumed),
        ]
    return "\n".join(lines)


def _projection(
    budgets: Sequence[BudgetCommand],
    batches: Sequence[int],
    base_batch: int,
    steps: Callable[[BudgetCommand, int], int],
    seconds_per_step: Mapping[int, float],
) -> str:
    """Per budget: one run's time at each batch and the budget's runs in total; then the sum."""
    rows = []
    total = 0.0
    for budget in budgets:
        per_run = {b: steps(budget, b) * seconds_per_step[b] for b in batches}
        runs = sum(_runs_trained(budget, b, base_batch) * per_run[b] for b in budget.batch_sizes)
        total += runs
        rows.append(
            [f"{budget.epochs:g}", *[duration(per_run[b]) for b in batches], duration(runs)]
        )
    days = f" ({total / 86400:.1f} days)" if total >= 86400 else ""
    rows.append(["all", *["" for _ in batches], f"{duration(total)}{days}"])
    return tabulate(
        rows,
        headers=["E", *[f"one run at batch {b}" for b in batches], "the budget's runs"],
        tablefmt="github",
        disable_numparse=True,
    )


def budget_cost_pages(results_root: Path) -> list[tuple[Path, str]]:
    """Every ``results_root/<experiment>/README.md`` with the markers, with its experiment."""
    return [
        (page, page.parent.name)
        for page in sorted(Path(results_root).glob("*/README.md"))
        if BUDGET_COSTS_BEGIN in page.read_text("utf-8")
    ]
