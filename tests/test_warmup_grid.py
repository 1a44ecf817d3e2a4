"""The warmup grid (sweep/warmup_grid.py): its plan resolved by the sweep's own planner, the
script's --plan and bad input, and its one table generated from small synthetic records."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from test_report import make_record, write_records

import date
from reproduce.harness.cli.report import main as main_report
from reproduce.harness.cli.warmup_grid import main as warmup_grid_main
from reproduce.harness.report.claim_answers import CLAIM_ANSWERS_BEGIN, CLAIM_ANSWERS_END
from reproduce.harness.report.readme import (
    README_BEGIN,
    README_END,
    StaleReport,
    regenerated_pages,
)
from reproduce.harness.report.warmup_grid import (
    grid_answer,
    grid_tables,
    write_warmup_grid_report,
)
from reproduce.harness.run.registry import experiments
from reproduce.harness.sweep import warmup_grid

MNIST = experiments()["mnist_lstm"]
BASE = MNIST.base_recipe.batch_size
W0 = MNIST.recipe_for("full").warmup_epochs


def test_the_grid_spans_sqrt_to_date_warmups_for_every_lr_of_the_tuning_grid(tmp_path) -> None:
    grid = warmup_grid.grid_for(MNIST, tmp_path)
    assert grid.scale == MNIST.claims[0].scale_factor == 64
    assert grid.lrs == MNIST.tuning_grid["lr"]
    cells = grid.cells()
    scaled = [cell for cell in cells if cell.multiplier is not None]
    assert {(cell.lr, cell.multiplier) for cell in scaled} == {
        (lr, m) for lr in grid.lrs for m in warmup_grid.DEFAULT_MULTIPLIERS
    }
    assert all(cell.batch_size == 64 * BASE for cell in scaled)
    assert {cell.lr for cell in cells if cell.multiplier is None} == set(grid.lrs)
    assert grid.run_count() == {BASE: 3 * 4, 64 * BASE: 2 * 4 * 4}
    assert len({cell.folder for cell in cells}) == len(cells)  # one folder per cell


def test_each_cell_is_the_sqrt_lr_with_its_warmup_and_x64_is_dates_recipe(tmp_path) -> None:
    """Resolved by the sweep's planner from the cell's run.py arguments: --set changes the base
    recipe before the method scales it, and sqrt keeps the warmup epochs."""
    from reproduce.harness.cli.arguments import build_parser, build_spec
    from reproduce.harness.sweep.planning import plan_runs

    grid = warmup_grid.grid_for(MNIST, tmp_path)
    for cell in grid.cells():
        argv = cell.run_arguments(grid.experiment, grid.preset, grid.epochs)
        (run, *others) = plan_runs(build_spec(build_parser().parse_args(argv), argv))
        assert len(others) == cell.seeds - 1 and run.batch_size == cell.batch_size
        k = cell.batch_size / BASE
        assert math.isclose(run.recipe.lr, cell.lr * math.sqrt(k))
        assert run.recipe.epochs == grid.epochs
        expected_warmup = W0 * (cell.multiplier or 1.0)
        assert math.isclose(run.recipe.warmup_epochs, expected_warmup)
        if cell.multiplier == k:  # m = k: exactly DATE's recipe from the base lr and w0
            base = MNIST.recipe_for("full").replace(lr=cell.lr, epochs=grid.epochs)
            assert run.recipe == date.scale(base, cell.batch_size, "date")


def test_a_warmup_longer_than_the_budget_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"multiplier\(s\) 1000 x w0"):
        warmup_grid.grid_for(MNIST, tmp_path, multipliers=(1.0, 1000.0))


def estimate_record(batch_size: int, seconds: float, seed: int) -> dict[str, Any]:
    record = make_record("date", batch_size, seed, 0.9)
    record["experiment"] = "mnist_lstm"
    record["recipe"]["epochs"] = 20.0
    record["wall_seconds"] = seconds
    return record


def test_plan_lists_every_cell_and_its_cost_and_trains_nothing(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    write_records(
        results / "mnist_lstm" / "budget" / "E20",
        [estimate_record(BASE, 100.0, 0), estimate_record(64 * BASE, 200.0, 0)],
    )
    out = tmp_path / "grid"
    argv = ["mnist_lstm", "--plan", "--out", str(out), "--results", str(results)]
    assert warmup_grid_main(argv) == 0
    text = capsys.readouterr().out
    assert "Runs: 44 (12 at batch 128, 32 at batch 8192); 44 not recorded yet." in text
    hours = (12 * 100.0 + 32 * 200.0) / 3600
    assert f"one after another: {hours:.1f} h" in text
    assert text.count("python reproduce/run.py mnist_lstm --preset full --methods sqrt") == 20
    assert f"--set warmup_epochs={64 * W0:g} --out {out.as_posix()}/lr=0.4/warmup_x64" in text
    assert not out.exists()  # nothing trained, nothing written


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--multipliers", "1,x"], "--multipliers: '1,x' is not a comma-separated list"),
        (["--multipliers", "1,1000"], "exceed the budget of 20 epochs"),
        (["--preset", "nope"], "--preset 'nope': one of"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message) -> None:
    assert warmup_grid_main(["mnist_lstm", "--plan", "--out", str(tmp_path), *extra]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


# ------------------------------------------------------------------ the table, from records


def grid_record(
    lr: float, batch_size: int, warmup: float, seed: int, value: float | None
) -> dict[str, Any]:
    """A record as a grid cell writes it (mnist_lstm, full preset, E = 20, method sqrt)."""
    status = "ok" if value is not None else "diverged"
    record = make_record("sqrt", batch_size, seed, value, status=status)
    record.update(experiment="mnist_lstm", preset="full")
    record["recipe"].update(lr=lr * math.sqrt(batch_size / BASE), epochs=20.0)
    record["recipe"]["warmup_epochs"] = warmup
    record["base_recipe"] = {"batch_size": BASE, "lr": lr, "epochs": 20.0, "warmup_epochs": warmup}
    return record


def write_grid(root: Path) -> Path:
    """lr 0.1: base 0.986/0.988/0.990, x1 misses, x64 keeps; lr 0.4: x1 has a diverged seed, x64
    not run; lr 0.2 has scaled runs but no base run yet."""
    big = 64 * BASE
    write_records(
        root / "lr=0.1" / "base",
        [grid_record(0.1, BASE, W0, s, v) for s, v in enumerate((0.986, 0.988, 0.990))],
    )
    write_records(
        root / "lr=0.1" / "warmup_x1",
        [grid_record(0.1, big, W0, s, v) for s, v in enumerate((0.93, 0.95))],
    )
    write_records(
        root / "lr=0.1" / "warmup_x64",
        [grid_record(0.1, big, 64 * W0, s, v) for s, v in enumerate((0.985, 0.987))],
    )
    write_records(root / "lr=0.4" / "base", [grid_record(0.4, BASE, W0, 0, 0.984)])
    write_records(
        root / "lr=0.4" / "warmup_x1",
        [grid_record(0.4, big, W0, 0, 0.6), grid_record(0.4, big, W0, 1, None)],
    )
    write_records(root / "lr=0.2" / "warmup_x1", [grid_record(0.2, big, W0, 0, 0.94)])
    return root


def test_the_table_has_a_row_per_lr_a_column_per_warmup_and_every_seed(tmp_path) -> None:
    root = write_grid(tmp_path / "warmup_grid")
    tables = grid_tables(root, band_floor=0.002)
    assert [w["multiplier"] for w in tables["warmups"]] == [1.0, 64.0]
    assert (tables["scale"], tables["batch_size"], tables["epochs"]) == (64, 64 * BASE, 20.0)
    rows = {row["lr"]: row for row in tables["rows"]}
    assert list(rows) == [0.1, 0.2, 0.4]
    band = rows[0.1]["band"]
    assert math.isclose(band["mean"], 0.988) and math.isclose(band["half_width"], 0.004)
    x1, x64 = rows[0.1]["cells"][f"{W0:g}"], rows[0.1]["cells"][f"{64 * W0:g}"]
    assert (x1["keeps"], math.isclose(x1["mean"], 0.94)) == (False, True)
    assert (x64["keeps"], [s["value"] for s in x64["seeds"]]) == (True, [0.985, 0.987])
    assert rows[0.2]["band"] is None and rows[0.2]["cells"][f"{W0:g}"]["keeps"] is None
    diverged = rows[0.4]["cells"][f"{W0:g}"]
    assert (diverged["n"], diverged["mean"], diverged["keeps"]) == (2, 0.6, False)
    assert rows[0.4]["cells"][f"{64 * W0:g}"]["n"] == 0

    text = write_warmup_grid_report(root, 0.002)["markdown"].read_text()
    assert (
        f"warmup x1 (sqrt's), {W0:g} ep" in text and f"warmup x64 (DATE's), {64 * W0:g} ep" in text
    )
    assert "|       0.1 | 0.988 ± 0.004 (n=3)" in text
    assert "0.94 (s0 0.93, s1 0.95): misses" in text
    assert "0.986 (s0 0.985, s1 0.987): keeps" in text
    assert "0.6 (s0 0.6, s1 diverged): misses" in text
    assert "|       0.2 | not run" in text
    assert json.loads((root / "warmup_grid.json").read_text())["rows"][0]["lr"] == 0.1


def test_records_of_another_method_or_budget_are_refused(tmp_path) -> None:
    root = write_grid(tmp_path / "warmup_grid")
    odd = grid_record(0.1, 64 * BASE, W0, 5, 0.9)
    odd["recipe"]["epochs"] = 40.0
    write_records(root / "lr=0.1" / "odd", [odd])
    with pytest.raises(ValueError, match="disagree on the epoch budget"):
        grid_tables(root, 0.002)


def test_report_py_writes_the_grid_table_and_each_cells_report(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    root = write_grid(results / "mnist_lstm" / "warmup_grid")
    assert main_report(["--results", str(results)]) == 0  # found without naming it
    assert (root / "warmup_grid.md").is_file()
    for cell in ("lr=0.1/base", "lr=0.1/warmup_x64", "lr=0.4/warmup_x1"):
        assert (root / cell / "tables.md").is_file()
    first = (root / "warmup_grid.md").read_bytes()
    assert main_report([str(root)]) == 0  # named: the same bytes
    assert (root / "warmup_grid.md").read_bytes() == first
    assert "python reproduce/report.py" in first.decode()


# ------------------------------------------------------------------ the grid in the README


def test_the_grids_answer_names_the_kept_cells_and_each_lrs_best_warmup(tmp_path) -> None:
    root = write_grid(tmp_path / "warmup_grid")
    answer = grid_answer(grid_tables(root, band_floor=0.002))
    assert answer.startswith("1 of the 4 cells run keep their base band (lr 0.1 with m = 64).")
    assert "lr 0.1 (band 0.988): best m = 64: 0.986, sqrt's 0.94" in answer
    assert "lr 0.2 (no band): best m = 1: 0.94" in answer
    assert "lr 0.4 (band 0.984): best m = 1: 0.6" in answer


def test_the_readme_shows_the_grid_and_refuses_a_stale_one(tmp_path) -> None:
    results = tmp_path / "results"
    root = write_grid(results / "mnist_lstm" / "warmup_grid")
    assert main_report(["--results", str(results)]) == 0
    readme = tmp_path / "README.md"
    readme.write_text(f"{CLAIM_ANSWERS_BEGIN}\n{CLAIM_ANSWERS_END}\n{README_BEGIN}\n{README_END}\n")
    text = regenerated_pages(readme, results)[readme]
    assert "### mnist_lstm / warmup grid" in text
    assert "0.986 (s0 0.985, s1 0.987): keeps" in text
    assert "**What decides DATE vs sqrt at x64** (`mnist_lstm` warmup grid: batch 8192" in text
    assert "1 of the 4 cells run keep their base band" in text
    write_records(root / "lr=0.4" / "warmup_x64", [grid_record(0.4, 64 * BASE, 64 * W0, 0, 0.9)])
    with pytest.raises(StaleReport, match="older than its records"):
        regenerated_pages(readme, results)
