"""Which batch is worth it: date.advise and `python -m date advise`, the short run of
reproduce/advise.py, and the noise scale beside the breaking point in the reports."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import BASE, make_record, sweep, write_records

import date
from date import Recipe, advise, fit_critical_batch, format_advice, noise_from_record
from date.__main__ import main
from date.advise import examples_ratio, step_speedup
from reproduce.harness.cli.advise import main as main_advise
from reproduce.harness.report import budgets as budget_report
from reproduce.harness.report import noise as noise_report
from reproduce.harness.report import tolerance_band, write_report
from reproduce.harness.sweep.advice import default_micro_batch

MNIST = Recipe(batch_size=128, lr=0.1, epochs=10, warmup_epochs=0.0625)
ADVISE = ["advise", "--lr", "0.1", "--batch-size", "128", "--epochs", "10"]
ADVISE += ["--warmup-epochs", "0.0625", "--dataset-size", "55000"]

# ---- the model of steps and examples (McCandlish et al. 2018, Section 2.3) ----------------------


def test_step_and_example_ratios_follow_the_model():
    # S = S_min (1 + B_noise / B): at B0 = 100, B_noise = 900 -> S(B0) = 10 S_min; at B = 900,
    # S = 2 S_min (the critical batch), a speed-up of 5; examples E = B S: 900 * 2 vs 100 * 10.
    assert step_speedup(900, 100, 900) == pytest.approx(5.0)
    assert examples_ratio(900, 100, 900) == pytest.approx(1800 / 1000)
    assert step_speedup(100, 100, 900) == examples_ratio(100, 100, 900) == 1.0


def test_suggested_batch_is_the_largest_doubling_not_above_the_noise_scale():
    advice = advise(MNIST, 3000.0, 55000)
    assert advice.suggested_batch == 2048
    assert advice.recipe == date.scale(MNIST, 2048, "date")
    assert advice.plan_row.peak_lr == pytest.approx(0.4) and advice.plan_row.warmup_epochs == 1
    batches = [outlook.batch_size for outlook in advice.ladder]
    assert batches == [128, 256, 512, 1024, 2048, 4096, 8192]  # up to 4 x B_crit
    assert advice.ladder[4].step_speedup == pytest.approx((1 + 3000 / 128) / (1 + 3000 / 2048))
    assert advise(MNIST, 4096.0, 55000).suggested_batch == 4096  # "not above": equal is fine


def test_a_noise_scale_below_twice_the_base_batch_keeps_the_base_batch():
    advice = advise(MNIST, 200.0, 55000)
    assert advice.suggested_batch == 128 and advice.recipe == MNIST
    assert "Suggested batch: 128, the base batch" in format_advice(advice)


def test_the_suggestion_stops_where_the_method_cannot_scale_the_recipe():
    # DATE multiplies warmup epochs by k: 1 epoch of 4 allows k = 4 at most.
    base = Recipe(batch_size=100, lr=0.1, epochs=4, warmup_epochs=1)
    advice = advise(base, 1e5, 10_000)
    assert advice.suggested_batch == 400
    assert "warmup_epochs=8 > epochs=4" in advice.limited_by
    assert "Stopped there" in format_advice(advice)
    assert advise(base, 1e5, 10_000, method="sqrt").suggested_batch == 51200


@pytest.mark.parametrize("value", [0.0, -5.0, math.nan, math.inf, True, "100"])
def test_a_noise_scale_that_is_not_a_positive_number_is_refused(value):
    with pytest.raises(ValueError, match="noise scale"):
        advise(MNIST, value, 55000)


def test_fit_recovers_the_critical_batch_of_the_model():
    points = [(batch, 300 * (1 + 1500 / batch)) for batch in (128, 256, 512, 1024, 4096)]
    assert fit_critical_batch(points) == pytest.approx(1500)
    assert fit_critical_batch(points[:2]) == pytest.approx(1500)
    assert fit_critical_batch(points[:1]) is None  # one batch cannot separate S_min and B_crit
    assert fit_critical_batch([(128, 100), (1024, 300)]) is None  # more steps at a larger batch


# ---- python -m date advise ----------------------------------------------------------------------


def noise_record(path: Path, signal: list, noise: list) -> Path:
    """A suite record (the fields the advisor reads) with per-step noise estimates."""
    record = make_record("none", BASE, 0, 0.98)
    steps = len(signal)
    record["curves"] = {
        "step": list(range(steps)),
        "lr": [0.1] * steps,
        "loss": [1.0] * steps,
        "noise_grad_sq": signal,
        "noise_trace": noise,
        "noise_scale": date.smoothed_noise_scale(signal, noise),
    }
    path.write_text(json.dumps(record))
    return path


def test_advise_from_a_value_prints_the_estimate_the_table_and_the_recipe(capsys):
    assert main([*ADVISE, "--noise-scale", "3000"]) == 0
    out = capsys.readouterr().out
    assert "B_simple = 3000 examples" in out and "arXiv 1812.06162" in out
    assert "Suggested batch: 2048 (k = 16 x base 128)" in out
    assert "| 2048    | 16  | 9.91" in out and "<- suggested" in out
    assert "|         2048 | date     |  16 |       0.4 |" in out


def test_advise_as_json(capsys):
    assert main([*ADVISE, "--noise-scale", "3000", "--method", "legw", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["suggested_batch"] == 2048 and result["method"] == "date"
    assert result["recipe"]["lr"] == pytest.approx(0.4)


def test_advise_from_a_record_uses_its_recipe_dataset_and_smoothed_estimate(tmp_path, capsys):
    signal = [None, 1.0, 2.0, 1.5]
    noise = [None, 900.0, 1100.0, 1500.0]
    path = noise_record(tmp_path / "run.json", signal, noise)
    reading = noise_from_record(path)
    assert reading["noise_scale"] == pytest.approx(date.smoothed_noise_scale(signal, noise)[-1])
    assert reading["pooled_noise_scale"] == pytest.approx(3500 / 4.5)
    assert reading["dataset_size"] == 16384 and reading["measured_steps"] == 3
    assert reading["base_recipe"] == Recipe(batch_size=BASE, lr=0.1, epochs=2, warmup_epochs=0.5)
    assert main(["advise", "--record", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"Measured in {path} (toy, none at batch 128, seed 0)" in out
    assert f"B_simple = {reading['noise_scale']:.4g} examples" in out
    assert "Suggested batch: 512 (k = 4 x base 128)" in out


def test_advise_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    no_noise = tmp_path / "plain.json"
    no_noise.write_text(json.dumps(make_record("none", BASE, 0, 0.98)))
    noisy_only = noise_record(tmp_path / "noisy.json", [-1.0, -2.0], [5.0, 6.0])
    cases = [
        (["advise", "--noise-scale", "3000", "--lr", "0.1"], "--noise-scale needs the base recipe"),
        ([*ADVISE, "--noise-scale", "-3"], "noise scale must be a finite number > 0"),
        ([*ADVISE, "--noise-scale", "3", "--smoothing", "1"], "--smoothing 1: must be in [0, 1)"),
        (["advise", "--record", str(no_noise), "--lr", "0.1"], "--record gives the base recipe"),
        (["advise", "--record", str(tmp_path / "missing.json")], "no such file"),
        (["advise", "--record", str(no_noise)], "no gradient noise estimate in its curves"),
        (["advise", "--record", str(noisy_only)], "do not resolve a positive noise scale"),
    ]
    for arguments, message in cases:
        assert main(arguments) == 2, arguments
        error = capsys.readouterr().err
        assert error.startswith("error: ") and message in error and error.count("\n") == 1
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["advise", "--record", str(tmp_path / "bad.json")]) == 2
    assert "not a readable JSON run record" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # both sources: argparse refuses, status 2
        main(["advise", "--record", str(no_noise), "--noise-scale", "5"])
    assert exit_info.value.code == 2


def test_advise_runs_as_a_module_command():
    result = subprocess.run(
        [sys.executable, "-m", "date", *ADVISE, "--noise-scale", "100"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Suggested batch: 128, the base batch" in result.stdout


# ---- reproduce/advise.py: the short run at the base batch ---------------------------------------


def test_default_micro_batch_is_a_divisor_up_to_a_quarter_of_the_batch():
    assert [default_micro_batch(b) for b in (128, 20, 32, 3, 1)] == [32, 5, 8, 1, 1]


def test_short_run_records_the_noise_curves_and_advises(tmp_path, capsys):
    out = tmp_path / "advise"
    assert main_advise(["mnist_lstm", "--preset", "smoke", "--quiet", "--out", str(out)]) == 0
    record = json.loads((out / "runs" / "none_b32_s0.json").read_text())
    curves = record["curves"]
    assert record["micro_batch_size"] == 8 and record["recipe"]["epochs"] == 1
    assert record["gradient_noise"]["sizes"] == [{"from_step": 0, "small": 8, "big": 32}]
    assert {len(curves[name]) for name in ("step", *noise_report.CURVES)} == {16}
    assert all(value is not None for value in curves["noise_trace"])
    printed = capsys.readouterr().out
    reading = noise_from_record(out / "runs" / "none_b32_s0.json")
    assert f"B_simple {reading['noise_scale']:.4g} at its step 16 of 16" in printed
    assert (out / "advice.md").read_text() == printed
    advice = json.loads((out / "advice.json").read_text())
    assert advice["noise_scale"] == reading["noise_scale"]
    assert advice["base"]["epochs"] == 1  # the smoke preset's own budget, not shortened
    assert "## Gradient noise scale and the breaking point" in (out / "tables.md").read_text()


def test_a_budget_too_short_for_the_presets_largest_warmup_still_gets_its_report(tmp_path):
    """--set epochs=0.25 at batch 32 alone is a valid run, while the smoke preset's DATE run at
    128 is not (warmup 0.5 epochs): the report skips the coverage check instead of failing after
    training (as reproduce/advise.py's shortened budgets would)."""
    from reproduce.harness.cli.report import main as main_report
    from reproduce.harness.cli.run import main as run_main

    out = tmp_path / "short"
    argv = ["mnist_lstm", "--preset", "smoke", "--methods", "date", "--batch-sizes", "32"]
    assert run_main([*argv, "--set", "epochs=0.25", "--quiet", "--out", str(out)]) == 0
    assert "## Coverage" not in (out / "tables.md").read_text()
    assert main_report([str(out)]) == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--micro-batch", "32"], "below the base batch 32"),
        (["--micro-batch", "0"], "--micro-batch 0: must be between 1 and 31"),
        (["--epochs", "0"], "--epochs 0.0: must be a positive"),
        (["--epochs", "0.1"], "shorter than the base recipe's warmup (0.125 epochs)"),
        (["--method", "cubic"], "method must be one of"),
        (["--set", "lr=x"], "--set lr: 'x' is not float"),
    ],
)
def test_short_run_usage_errors_exit_2_before_training(tmp_path, capsys, arguments, message):
    out = tmp_path / "advise"
    argv = ["mnist_lstm", "--preset", "smoke", "--quiet", "--out", str(out), *arguments]
    assert main_advise(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    assert not out.exists()


# ---- the reports --------------------------------------------------------------------------------


def with_noise(record: dict, noise_scale: float) -> dict:
    """``record`` with constant noise estimates giving ``noise_scale``."""
    steps = len(record["curves"]["step"])
    record["curves"]["noise_grad_sq"] = [None] + [2.0] * (steps - 1)
    record["curves"]["noise_trace"] = [None] + [2.0 * noise_scale] * (steps - 1)
    record["curves"]["noise_scale"] = [None] + [noise_scale] * (steps - 1)
    record["gradient_noise"] = {"sizes": [{"from_step": 1, "small": 32, "big": BASE}]}
    return record


def test_noise_beside_the_breaking_point(tmp_path):
    records = [
        with_noise(r, 500.0) if r["batch_size"] == BASE else r for r in sweep()
    ]  # base batch measured; date keeps the band up to 8192, linear misses at 1024
    band = tolerance_band(records, BASE, 0.002)
    by_batch = noise_report.noise_by_batch(records)
    assert list(by_batch) == [BASE]
    assert by_batch[BASE]["runs"] == 6 and by_batch[BASE]["at_end"] == pytest.approx(500)
    assert by_batch[BASE]["at_target"] == pytest.approx(500)  # steps_to_target 800 of 256
    points = noise_report.breaking_points(records, band)
    assert points == {
        "date": {"largest_kept": 8192, "first_miss": None},
        "linear": {"largest_kept": BASE, "first_miss": 1024},
    }
    write_report(write_records(tmp_path, records), [], [], 0.002)
    text = (tmp_path / "tables.md").read_text()
    assert "| 128     | 1   | 6      | 500         | 500      | 500      | 32/128" in text
    assert "B_crit ~ 500, so the advisor would suggest batch 256" in text
    assert "| date     | 8192" in text and "none up to 8192" in text
    assert "| linear   | 128" in text and "| 1024" in text


def test_a_sweep_without_noise_curves_says_how_to_get_them(tmp_path):
    write_report(write_records(tmp_path, sweep()), [], [], 0.002)
    text = (tmp_path / "tables.md").read_text()
    assert "No run recorded a noise estimate" in text and "reproduce/advise.py" in text
    assert "| linear   | 128" in text  # the breaking point is shown anyway


def test_malformed_noise_curves_are_named(tmp_path):
    record = with_noise(make_record("date", BASE, 0), 100.0)
    record["curves"]["noise_scale"] = record["curves"]["noise_scale"][:-1]
    with pytest.raises(ValueError, match=r"date b128 s0: curves\['noise_scale'\] must be a list"):
        noise_report.noise_by_batch([record])
    record = with_noise(make_record("date", BASE, 0), 100.0)
    record["curves"]["noise_trace"][3] = "1.0"
    with pytest.raises(ValueError, match="not a finite number"):
        noise_report.noise_by_batch([record])


def test_budget_section_puts_the_noise_beside_near_perfect_scaling_and_the_fitted_batch(tmp_path):
    records = [with_noise(r, 500.0) if r["batch_size"] == BASE else r for r in sweep()]
    write_records(tmp_path / "E1", records)
    band = tolerance_band(records, BASE, 0.002)
    tables = {
        "base_batch_size": BASE,
        "methods": ["date", "linear"],
        "batch_sizes": [BASE, 1024, 8192],
        "budgets": [{"epochs": 1, "folder": "E1", "band": band.to_dict()}],
        "steps_to_target": {
            "date@128": {"epochs": 1, "steps": 800},
            "date@1024": {"epochs": 1, "steps": 150},
            "linear@128": {"epochs": 1, "steps": 800},
        },
        "scaling": {
            "date": {"largest_batch_near_perfect": 1024},
            "linear": {"largest_batch_near_perfect": None},
        },
    }
    text = budget_report.budget_noise_section(tables, tmp_path)
    assert "| 1   | 500 / 500 (b128)" in text
    # per budget: date keeps the band up to its largest batch run, linear misses it at 1024
    assert "| 8192 (largest run) | 128 (misses 1024) |" in text
    # S = a + b / B through (128, 800) and (1024, 150): b = 650 * 1024 / 7, a = 800 - b / 128
    slope = 650 * 1024 / 7
    assert "| date     | 1024" in text and f"{slope / (800 - slope / 128):.4g}" in text
    assert "| linear   | none" in text and "| 1         |" in text  # one batch: no fit
    assert "recorded a noise estimate" not in text

    # a budget whose records carry no estimate says so under the table
    write_records(tmp_path / "E2", sweep())
    tables["budgets"].append({"epochs": 2, "folder": "E2", "band": band.to_dict()})
    text = budget_report.budget_noise_section(tables, tmp_path)
    assert "| 2   | — / —" in text
    assert "No run at E = 2 recorded a noise estimate (—)" in text
    # a method a budget did not run is "not run", not "none" (no batch kept the band)
    write_records(tmp_path / "E3", [r for r in sweep() if r["method"] == "date"])
    tables["budgets"].append({"epochs": 3, "folder": "E3", "band": band.to_dict()})
    text = budget_report.budget_noise_section(tables, tmp_path)
    assert "| 3   | — / —                      | 8192 (largest run) | not run           |" in text
    assert "No run at E = 2, 3 recorded a noise estimate (—)" in text


def test_a_breaking_point_cell_says_whether_a_larger_batch_missed_or_was_never_run():
    cell = noise_report.breaking_point_cell
    assert cell({"largest_kept": BASE, "first_miss": 1024}, 8192) == "128 (misses 1024)"
    assert cell({"largest_kept": 8192, "first_miss": None}, 8192) == "8192 (largest run)"
    # a budget trained only at the base batch so far: kept, and nothing larger to judge
    assert cell({"largest_kept": BASE, "first_miss": None}, BASE) == "128 (largest run)"
    assert cell({"largest_kept": None, "first_miss": None}, 8192) == "—"
    assert cell(None, 8192) == "—"
