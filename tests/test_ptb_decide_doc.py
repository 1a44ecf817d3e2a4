"""results/ptb_small/README.md: the commands that would decide the PTB x64 claim on all of PTB are
the full_budget preset (one command) and its budgets one at a time, each the base recipe's
schedule stretched, untuned (its cost section is generated: tests/test_budget_costs.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.sweep.budgets import budget_spec, budgets_of, stretched
from reproduce.harness.sweep.planning import plan_runs

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "results" / "ptb_small" / "README.md"


def doc_commands() -> list[list[str]]:
    prefix = "python reproduce/run.py ptb_small"
    lines = [line.strip() for line in DOC.read_text().splitlines()]
    return [shlex.split(line)[2:] for line in lines if line.startswith(prefix)]


def _trained(spec) -> list[tuple[int, str, float, float]]:
    """(batch, method, warmup epochs, epochs) of every run the spec trains."""
    return sorted(
        (run.batch_size, run.method, run.recipe.warmup_epochs, run.recipe.epochs)
        for run in plan_runs(spec)
        if run.same_run_as is None
    )


def test_one_command_runs_every_budget_and_the_per_budget_commands_are_its_parts() -> None:
    (whole, *parts) = doc_commands()
    assert "--set" not in whole  # the one command: every budget of the preset
    spec = build_spec(build_parser().parse_args(whole), whole)
    preset = spec.experiment.presets[spec.preset]
    assert spec.preset == "full_budget" and not preset.tune_budgets
    assert preset.data == {}  # all of PTB, not the slice
    assert budgets_of(spec) == (13, 52, 104)
    assert spec.out_dir == Path("results/ptb_small/full_budget")
    part_epochs = []
    for argv in parts:
        part = build_spec(build_parser().parse_args(argv), argv)
        (epochs,) = budgets_of(part)
        part_epochs.append(epochs)
        assert part.out_dir == spec.out_dir
        ours, preset_budget = budget_spec(part, epochs, {}), budget_spec(spec, epochs, {})
        assert _trained(ours) == _trained(preset_budget)  # the written-out flags change nothing
        assert dict(preset_budget.recipe_overrides) == stretched(spec, epochs)
        trained = _trained(preset_budget)
        assert [(batch, method) for batch, method, *_ in trained] == (
            [(20, "date")] * 2 + [(1280, "date")] * 2 + [(1280, "sqrt")] * 2
        )
        date_x64 = {
            warmup for batch, method, warmup, _ in trained if (batch, method) == (1280, "date")
        }
        assert date_x64 == {64 * preset_budget.base_recipe.warmup_epochs}
        assert {e for *_, e in trained} == {epochs}
    assert tuple(part_epochs) == budgets_of(spec)
