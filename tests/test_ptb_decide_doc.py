"""results/ptb_small/README.md: the commands that would decide the PTB x64 claim are valid run.py
commands whose schedules are the budget sweep's stretch of the base recipe (its cost section is
generated: tests/test_budget_costs.py)."""

from __future__ import annotations

import dataclasses
import math
import shlex
from pathlib import Path

from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.sweep.budgets import budget_folder, stretched
from reproduce.harness.sweep.planning import plan_runs

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "results" / "ptb_small" / "README.md"


def doc_commands() -> list[list[str]]:
    prefix = "python reproduce/run.py ptb_small"
    lines = [line.strip() for line in DOC.read_text().splitlines()]
    return [shlex.split(line)[2:] for line in lines if line.startswith(prefix)]


def test_each_command_is_one_budget_with_the_budget_sweeps_stretched_schedule() -> None:
    commands = doc_commands()
    assert len(commands) == 3
    budgets = []
    for argv in commands:
        spec = build_spec(build_parser().parse_args(argv), argv)
        epochs = spec.recipe_overrides["epochs"]
        budgets.append(epochs)
        unstretched = dataclasses.replace(spec, recipe_overrides={})
        assert dict(spec.recipe_overrides) == stretched(unstretched, epochs)
        assert spec.out_dir == budget_folder(
            REPO / "results/ptb_small/full_budget", epochs
        ).relative_to(REPO)
        runs = plan_runs(spec)
        trained = [run for run in runs if run.same_run_as is None]
        assert sorted((run.batch_size, run.method) for run in trained) == sorted(
            [(20, "date")] * 2 + [(1280, "date")] * 2 + [(1280, "sqrt")] * 2
        )
        (date_x64,) = {
            run.recipe.warmup_epochs
            for run in trained
            if run.method == "date" and run.batch_size == 1280
        }
        assert math.isclose(date_x64, 64 * spec.base_recipe.warmup_epochs)
    assert budgets == [13, 52, 104]
