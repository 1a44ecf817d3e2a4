"""The cost section of a results page (report/budget_costs.py): steps, measured and projected
times come from the page's own commands and the committed records, never from typed numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_report import BASE, make_record, write_records

from reproduce.harness.report.budget_costs import (
    BUDGET_COSTS_BEGIN,
    BUDGET_COSTS_END,
    budget_commands,
    budget_costs_section,
)
from reproduce.harness.report.readme import regenerated_pages

K = 4
COMMON = f"--preset full --methods date,sqrt --batch-sizes {BASE},{BASE * K} --seeds 2"
PAGE = f"""# toy budgets

    python reproduce/run.py toy {COMMON} --set epochs=2 --out x/E2
    python reproduce/run.py toy {COMMON} --set epochs=8 --set decay_rate=0.5 --out x/E8

## Cost

{BUDGET_COSTS_BEGIN}
stale text
{BUDGET_COSTS_END}
"""


def _results(tmp_path: Path, *, resumed_large: bool = False) -> Path:
    base = make_record("date", BASE)
    base["wall_seconds"] = base["total_steps"] * 0.5  # 0.5 s a step
    large = make_record("date", BASE * K)
    large["wall_seconds"] = large["total_steps"] * 1.5  # 3x a base step
    if resumed_large:
        large["resumed_from_step"] = 3
    for record in (base, large):
        record["experiment"] = "toy"
        record["preset"] = "full"
    root = tmp_path / "results"
    write_records(root / "toy" / "full", [base, large])
    (root / "toy" / "README.md").write_text(PAGE)
    return root


def test_the_commands_are_read_from_the_page() -> None:
    budgets = budget_commands(PAGE, "toy")
    assert [b.epochs for b in budgets] == [2, 8]
    assert budgets[1].batch_sizes == (BASE, BASE * K)
    assert budgets[1].methods == ("date", "sqrt")
    assert budgets[1].seeds == 2
    with pytest.raises(ValueError, match="--seeds"):
        budget_commands("python reproduce/run.py toy --set epochs=3 --batch-sizes 1", "toy")


def test_steps_measured_and_projected_times_follow_the_records(tmp_path: Path) -> None:
    root = _results(tmp_path)
    text = budget_costs_section(PAGE, root, "toy")
    per_epoch_base = 16384 / BASE
    per_epoch_large = 16384 / (BASE * K)
    # E = 8: steps are E x steps per epoch; 2 seeds at the base batch, 2 methods x 2 seeds at k
    row = re.search(r"^\| 8 +\| (\d+) +\| (\d+) +\| (\d+) +\|$", text, flags=re.MULTILINE)
    assert row is not None, text
    assert int(row[1]) == int(8 * per_epoch_base)
    assert int(row[2]) == int(8 * per_epoch_large)
    assert int(row[3]) == 2 + 4
    assert "costs 3 times a batch" in text
    # one run at the base batch at E = 8: 8 x 128 steps x 0.5 s = 512 s
    assert "8 min 32 s" in text
    assert f"`toy/full/runs/date_b{BASE}_s0.json`" in text
    assert "2026-01-01" in text and "c0ffee1" in text
    assert "GPU" not in text  # no assumption is stated for this experiment


def test_a_resumed_record_does_not_time_a_run(tmp_path: Path) -> None:
    root = _results(tmp_path, resumed_large=True)
    text = budget_costs_section(PAGE, root, "toy")
    assert f"No committed full record times batch {BASE * K}" in text


def test_the_readme_command_regenerates_the_page(tmp_path: Path) -> None:
    root = _results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# a README without generated sections\n")
    fresh = regenerated_pages(readme, root)[root / "toy" / "README.md"]
    assert "stale text" not in fresh
    assert fresh.startswith("# toy budgets")
    assert fresh == fresh.split(BUDGET_COSTS_BEGIN)[0] + BUDGET_COSTS_BEGIN + "\n" + (
        budget_costs_section(PAGE, root, "toy") + "\n" + BUDGET_COSTS_END + "\n"
    )


def test_the_committed_ptb_page_is_what_the_report_writes() -> None:
    repo = Path(__file__).resolve().parents[1]
    page = repo / "results" / "ptb_small" / "README.md"
    text = page.read_text()
    section = text.split(BUDGET_COSTS_BEGIN)[1].split(BUDGET_COSTS_END)[0].strip()
    assert section == budget_costs_section(text, repo / "results", "ptb_small")
    records = repo / "results" / "ptb_small" / "full" / "runs"
    record = json.loads((records / "date_b20_s0.json").read_text())
    row = re.search(r"^\| 13 +\| (\d+) +\|", section, flags=re.MULTILINE)
    assert row is not None and int(row[1]) == record["total_steps"]  # the E = 13 run's own count
