"""The epoch budget as a sweep axis: tuning per budget, records that carry E, the
budget report (steps to result, the claim answered per budget)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reproduce.harness.cli.report import main as main_report
from reproduce.harness.cli.run import main
from reproduce.harness.core.targets import Claim, Target
from reproduce.harness.report import budgets as budget_report
from reproduce.harness.report.band import ToleranceBand, keeps_band
from reproduce.harness.report.readme import readme_results_section
from reproduce.harness.run.experiment import Preset
from reproduce.harness.run.registry import experiments


@pytest.fixture
def tiny_budget_experiment(monkeypatch):
    """mnist_lstm with a seconds-long budget preset: batches 32 and 128 (k = 4), budgets 1 and
    2 epochs, a 2-point lr grid, a reachable time-to-target and the claim at x4."""
    mnist = experiments()["mnist_lstm"]
    smoke = mnist.presets["smoke"]
    budget = Preset(
        name="budget",
        batch_sizes=(32, 128),
        recipe=smoke.recipe,
        model=smoke.model,
        data=smoke.data,
        methods=("sqrt", "date"),
        base_seeds=2,
        budgets=(1, 2),
        decisive_seeds=2,
        decisive_methods=("date",),
        decisive_scales=(4,),
    )
    tiny = dataclasses.replace(
        mnist,
        presets={**mnist.presets, "budget": budget},
        tuning_grid={"lr": (0.05, 0.1)},
        time_to_target=dataclasses.replace(mnist.time_to_target, value=0.05),
        claims=(dataclasses.replace(mnist.claims[0], scale_factor=4),),
    )
    monkeypatch.setitem(experiments(), "mnist_lstm", tiny)
    return tiny


def test_a_budget_sweep_tunes_each_budget_and_reports_per_budget(tmp_path, tiny_budget_experiment):
    out = tmp_path / "budget"
    assert main(["mnist_lstm", "--preset", "budget", "--quiet", "--out", str(out)]) == 0
    for epochs in (1, 2):
        folder = out / f"E{epochs}"
        tuning = json.loads((folder / "tuning" / "tuning.json").read_text())
        assert [p["point"]["lr"] for p in tuning["points"]] == [0.05, 0.1]
        records = {p.name: json.loads(p.read_text()) for p in (folder / "runs").glob("*.json")}
        # date at x4 is a decisive cell: 2 seeds; sqrt at x4 one; the base batch 2 seeds
        assert set(records) == {
            "sqrt_b32_s0.json", "sqrt_b32_s1.json", "date_b32_s0.json", "date_b32_s1.json",
            "sqrt_b128_s0.json", "date_b128_s0.json", "date_b128_s1.json",
        }  # fmt: skip
        for record in records.values():
            assert record["epoch_budget"] == epochs == record["recipe"]["epochs"]
            assert record["base_recipe"]["lr"] == tuning["best"]["point"]["lr"]  # tuned, used
        assert (folder / "tables.md").is_file()
        assert "All 7 planned runs" in (folder / "tables.md").read_text()
    tables = json.loads((out / "budgets.json").read_text())
    assert [b["epochs"] for b in tables["budgets"]] == [1, 2]
    assert tables["answer_lines"] and all("x4" in line for line in tables["answer_lines"])
    text = (out / "budgets.md").read_text()
    assert "## Steps to result" in text and "perfect scaling" in text
    assert (out / "plots" / "steps_to_result.png").read_bytes().startswith(b"\x89PNG")
    # the cost: 2 tuning points + the base batch's 2 seeds (sqrt's are date's, shared at k = 1)
    # + 3 runs at x4, each with its measured wall time
    for budget in tables["budgets"]:
        cost = budget["cost"]
        assert cost["trained_runs"] == 7 and cost["wall_seconds_total"] > 0
        assert set(cost["median_run_seconds"]) == {"32", "128"}
        # measured at both batches (a tiny run may take under a millisecond: no lower bound)
        assert all(seconds is not None for seconds in cost["median_run_seconds"].values())
    assert "## Cost on the machine that ran it" in text and tables["budgets_not_run"] == []

    # the report command regenerates the budget root and its folders from the records alone
    before = (out / "budgets.md").read_text()
    (out / "budgets.md").unlink()
    assert main_report([str(out)]) == 0
    assert (out / "budgets.md").read_text() == before

    # the README's results section shows it (answers, claim table, steps), linked
    results = tmp_path / "results"
    (results / "mnist_lstm").mkdir(parents=True)
    out.rename(results / "mnist_lstm" / "budget")
    section = readme_results_section(results)
    assert "### mnist_lstm / budget" in section
    assert all(line in section for line in tables["answer_lines"])
    assert "(results/mnist_lstm/budget/plots/steps_to_result.png)" in section


def test_an_untuned_budget_preset_runs_its_own_recipe_at_every_budget(
    tmp_path, tiny_budget_experiment, monkeypatch, capsys
):
    """``tune_budgets=False`` (ptb_small's full_budget): no tuning runs; every budget trains the
    preset's base lr, its schedule stretched; the reports say the recipe was not tuned."""
    budget = tiny_budget_experiment.presets["budget"]
    untuned = dataclasses.replace(
        tiny_budget_experiment,
        presets={
            **tiny_budget_experiment.presets,
            "full_budget": dataclasses.replace(budget, name="full_budget", tune_budgets=False),
        },
        tuning_grid={},  # nothing to tune with: the preset must not ask for it
    )
    monkeypatch.setitem(experiments(), "mnist_lstm", untuned)
    results = tmp_path / "results"
    out = results / "mnist_lstm" / "full_budget"
    assert main(["mnist_lstm", "--preset", "full_budget", "--quiet", "--out", str(out)]) == 0
    base_lr = untuned.recipe_for("full_budget", {}).lr
    for epochs in (1, 2):
        folder = out / f"E{epochs}"
        assert not (folder / "tuning").exists()
        records = [json.loads(p.read_text()) for p in (folder / "runs").glob("*.json")]
        assert len(records) == 7
        for record in records:
            assert record["recipe"]["epochs"] == epochs
            assert record["base_recipe"]["lr"] == base_lr
    text = (out / "budgets.md").read_text()
    assert "the preset's base recipe (not tuned)" in text and "| not tuned " in text
    section = readme_results_section(results)
    assert "### mnist_lstm / full_budget" in section
    argv = ["mnist_lstm", "--preset", "full_budget", "--out", str(out), "--shard", "1/2"]
    capsys.readouterr()
    assert main(argv) == 2
    assert "run one budget per machine with --set epochs=E" in capsys.readouterr().err


def test_set_epochs_runs_one_budget_of_the_grid(tmp_path, tiny_budget_experiment, capsys):
    out = tmp_path / "budget"
    argv = ["mnist_lstm", "--preset", "budget", "--quiet", "--out", str(out)]
    assert main([*argv, "--set", "epochs=2"]) == 0
    assert (out / "E2" / "runs").is_dir() and not (out / "E1").exists()
    # the budget not run is projected from the one run: half its median runs
    tables = json.loads((out / "budgets.json").read_text())
    assert tables["budgets_not_run"] == [1.0]
    text = (out / "budgets.md").read_text()
    assert "E = 1 is in the preset but not run: at 0.5x E = 2's median runs, one run" in text
    assert main([*argv, "--set", "epochs=3"]) == 2
    assert "--set epochs=3: not one of the preset's budgets (1, 2)" in capsys.readouterr().err


def record(method, batch, seed, steps, metric=0.98, status="ok"):
    return {
        "method": method,
        "batch_size": batch,
        "seed": seed,
        "steps_to_target": steps,
        "status": status,
        "final": {"accuracy": metric},
    }


def test_cell_steps_need_every_seed_and_take_the_slowest():
    assert budget_report.cell_steps([record("date", 128, 0, 40), record("date", 128, 1, 55)]) == 55
    assert (
        budget_report.cell_steps([record("date", 128, 0, 40), record("date", 128, 1, None)]) is None
    )
    assert budget_report.cell_steps([]) is None


def test_scaling_summary_speedup_and_the_largest_batch_near_perfect_scaling():
    best = {
        "date@128": {"epochs": 10, "steps": 800},
        "date@256": {"epochs": 10, "steps": 400},  # perfect: x2
        "date@512": {"epochs": 20, "steps": 350},  # x2.3 at k = 4: within 2x of perfect
        "date@1024": {"epochs": 40, "steps": 300},  # x2.7 at k = 8: beyond 2x
        "date@2048": {"epochs": 40, "steps": 40},  # perfect again, but not contiguous
    }
    summary = budget_report.scaling_summary("date", [128, 256, 512, 1024, 2048], 128, best)
    assert summary["speedup"]["256"] == 2.0
    assert summary["speedup"]["512"] == pytest.approx(800 / 350)
    assert summary["largest_batch_near_perfect"] == 512


def test_keeps_band_counts_a_diverged_seed_as_a_loss():
    band = ToleranceBand(
        metric="accuracy", mode="max", base_batch_size=128, mean=0.98, half_width=0.002,
        std=0.001, n_seeds=3, n_diverged=0, seeds=(0, 1, 2), floor=0.002,
    )  # fmt: skip
    assert keeps_band([record("date", 8192, 0, 5, 0.979)], band) is True
    assert keeps_band([record("date", 8192, 0, 5, 0.97)], band) is False
    assert (
        keeps_band(
            [record("date", 8192, 0, 5, 0.99), record("date", 8192, 1, None, 0.1, "diverged")],
            band,
        )
        is False
    )
    assert keeps_band([], band) is None


def test_answer_lines_name_the_smallest_budget_or_none_up_to_the_largest():
    tables = {
        "claim": Claim(
            text="x64", source="abstract", status="paper abstract", metric="accuracy",
            mode="max", scale_factor=64, method="date",
        ).to_dict(),
        "budgets": [{"epochs": 10}, {"epochs": 20}, {"epochs": 40}, {"epochs": 80}],
        "methods": ["date", "linear"],
        "answers": {
            "date": {"smallest_budget": 20, "budgets_run": [10, 20, 40]},
            "linear": {"smallest_budget": None, "budgets_run": [10, 20]},
        },
    }  # fmt: skip
    lines = budget_report.answer_lines(tables)
    # E = 80 has no run at x64 yet (only its base batch): no line names it
    assert (
        lines[0]
        == "date: keeps the base band at x64 from E = 20 epochs (run at x64 at E = 10, 20, 40)."
    )
    assert lines[1] == (
        "linear: does not keep the base band at x64 at any budget up to E = 20 (run at x64 at "
        "E = 10, 20)."
    )


def test_every_budget_preset_fits_its_warmups():
    """DATE's warmup grows with k; at every budget of every budget preset it must fit."""
    for experiment in experiments().values():
        preset = experiment.presets.get("budget")
        if preset is None:
            continue
        assert isinstance(experiment.time_to_target, Target)
        from reproduce.harness.sweep.planning import plan_runs
        from reproduce.harness.sweep.spec import SweepSpec

        for epochs in preset.budgets:
            spec = SweepSpec(
                experiment, "budget", preset.methods, preset.batch_sizes, seeds=1,
                recipe_overrides={"epochs": epochs},
            )  # fmt: skip
            assert plan_runs(spec)


def test_budget_folder_names(tmp_path):
    from reproduce.harness.sweep.budgets import budget_folder

    assert budget_folder(tmp_path, 20) == tmp_path / "E20"
    assert budget_folder(tmp_path, 2.5) == Path(tmp_path) / "E2.5"


def test_budget_sweep_script_covers_the_budget_preset():
    """reproduce/mnist_lstm/budget_sweep.sh: its lanes give every (method, batch) of the budget
    preset at each budget, its default budgets are the preset's, and its lr split is the grid."""
    import re

    import date

    script = Path(__file__).parents[1] / "reproduce" / "mnist_lstm" / "budget_sweep.sh"
    text = script.read_text()
    # every run and tuning point continues from its checkpoint when the script is rerun
    assert re.search(r"reproduce/run\.py mnist_lstm --preset budget --out \S+ --resume ", text)
    assert re.search(r"reproduce/tune\.py mnist_lstm .*\s+--resume ", text)
    preset = experiments()["mnist_lstm"].presets["budget"]
    default = re.search(r'budgets=\$\{BUDGETS:-"([\d ]+)"\}', text).group(1).split()
    assert [float(b) for b in default] == list(preset.budgets)
    runs = re.findall(r'run --set "epochs=\$1" --batch-sizes ([\d,]+) --methods "\$(\d)"', text)
    lanes = re.findall(r'^ +lane "\$budget" ([\w,-]+) ([\w,-]+) &$', text, flags=re.MULTILINE)
    assert runs and len(lanes) == 2
    covered = set()
    for lane_methods in lanes:
        for batches, argument in runs:
            for method in lane_methods[int(argument) - 2].split(","):
                covered |= {(date.canonical_method(method), int(b)) for b in batches.split(",")}
    assert covered == {(m, b) for m in preset.methods for b in preset.batch_sizes}
    # DECISIVE_ONLY budgets: exactly the base batch and the decisive cells
    decisive = re.findall(
        r'run --set "epochs=\$budget" --batch-sizes ([\d,]+) --methods ([\w,-]+)', text
    )
    cells = {
        (m, int(b))
        for batches, methods in decisive
        for m in methods.split(",")
        for b in batches.split(",")
    }
    base = preset.batch_sizes[0]
    scaled = {base * k for k in preset.decisive_scales}
    assert cells == {(m, b) for m in preset.decisive_methods for b in {base, *scaled}}
    grid = {float(v) for v in re.findall(r"--set lr=([\d.]+)", text)}
    assert grid == set(experiments()["mnist_lstm"].tuning_grid["lr"])


def test_a_longer_budget_stretches_the_schedule_in_time():
    """PTB's exponential decay (halve every epoch from epoch 3 of 13) over 26 epochs: from epoch 6,
    by 0.5^(1/2) an epoch, so the lr at 2x the epoch is the 13-epoch lr at that epoch; poly
    (mnist) needs nothing but the epochs."""
    import date
    from reproduce.harness.sweep.budgets import stretched
    from reproduce.harness.sweep.spec import SweepSpec

    ptb = experiments()["ptb_small"]
    spec = SweepSpec(ptb, "full", ("date",), (20,), seeds=1)
    changes = stretched(spec, 26)
    assert changes["epochs"] == 26 and changes["decay_start_epoch"] == 6
    assert changes["decay_rate"] == pytest.approx(0.5**0.5)
    short, long = ptb.base_recipe, ptb.base_recipe.replace(**changes)
    for epoch in (5, 7, 9, 12):
        assert date.lr_at(long, 2 * epoch * 100, 100) == pytest.approx(
            date.lr_at(short, epoch * 100, 100), rel=0.3
        )  # a staircase of 1 epoch instead of 2: within one half-step
    assert date.lr_at(long, 26 * 100, 100) == pytest.approx(date.lr_at(short, 13 * 100, 100))
    mnist = experiments()["mnist_lstm"]
    assert stretched(SweepSpec(mnist, "full", ("date",), (128,), seeds=1), 40) == {"epochs": 40}


def test_steps_to_result_follow_the_budget_presets_own_target():
    """ptb_small's budget preset judges steps to result by its slice's target (perplexity 400),
    from each run's evaluations, not by the experiment's full-data 150."""
    ptb = experiments()["ptb_small"]
    target = budget_report.budget_target(ptb, "budget")
    assert target.value == 400 and target.mode == "min"
    assert budget_report.budget_target(ptb, "full") is ptb.time_to_target
    run = {
        "steps_to_target": None,
        "evals": [
            {"step": 10, "metrics": {"perplexity": 900.0}},
            {"step": 20, "metrics": {"perplexity": 390.0}},
            {"step": 30, "metrics": {"perplexity": 350.0}},
        ],
    }
    assert budget_report.steps_to(run, target) == 20
    assert budget_report.steps_to(run, ptb.time_to_target) is None


def test_plan_of_a_budget_preset_shows_every_budget_stretched(capsys):
    assert main(["ptb_small", "--preset", "budget", "--plan", "--methods", "date"]) == 0
    out = capsys.readouterr().out
    assert "Budget E = 4 epochs" in out and "Budget E = 16 epochs" in out
    rows = [
        line for line in out.splitlines() if line.startswith("| date") and "|    1280 |" in line
    ]
    # 100k tokens in 1280 rows: 3 windows of 20 an epoch
    assert [row.split("|")[7].strip() for row in rows] == ["12", "12", "48", "48"]  # total steps
