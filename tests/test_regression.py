"""Accuracy regression: every registered experiment's short fixed-seed run still gives the loss
curve and final metric stored in tests/expectations/<experiment>.json, within tolerances measured
from the seed-to-seed spread (reproduce/harness/sweep/regression.py). Regenerate on purpose with
`python reproduce/regress.py --update [EXPERIMENT ...]`."""

from __future__ import annotations

import dataclasses
import itertools
import json
import statistics
from pathlib import Path

import pytest

from reproduce.harness.cli.regress import main as regress_main
from reproduce.harness.run.registry import experiments, get_experiment
from reproduce.harness.sweep.regression import (
    EXPECTATIONS_DIR,
    K_SIGMA,
    LOSS_FLOOR,
    POINTS,
    Observation,
    build_expectation,
    check,
    compare,
    curve_windows,
    regression_config,
    run_regression,
)


@pytest.mark.parametrize("name", list(experiments()))
def test_accuracy_has_not_regressed(name):
    result = check(experiments()[name])
    assert result.passed, result.message()
    assert len(result.deviations) == 1 + POINTS


def test_a_missing_expectation_fails_with_the_regenerate_command(tmp_path):
    result = check(get_experiment("mnist_lstm"), tmp_path)
    assert not result.passed
    assert "python reproduce/regress.py --update mnist_lstm" in result.message()
    assert str(tmp_path / "mnist_lstm.json") in result.message()


def test_a_changed_config_fails_naming_the_key(tmp_path):
    stored = json.loads((EXPECTATIONS_DIR / "ptb_small.json").read_text())
    stored["config"]["recipe"]["lr"] *= 2
    stored["config"]["model"]["hidden_size"] += 1
    (tmp_path / "ptb_small.json").write_text(json.dumps(stored))
    result = check(get_experiment("ptb_small"), tmp_path)
    assert not result.passed and not result.deviations  # refused before training
    assert "recipe.lr: 40.0 -> 20.0" in result.message()
    assert "model.hidden_size: 33 -> 32" in result.message()


def synthetic(seed: int, metric: float, curve: list[float]) -> Observation:
    return Observation(seed, "ok", metric, curve, curve_windows(10 * POINTS, POINTS), 1.0)


def synthetic_expectation(spreads: list[float]) -> dict:
    """Three seeds whose curves differ by spreads[i] at point i (all else equal)."""
    experiment = get_experiment("mnist_lstm")
    config = regression_config(experiment)
    observations = [
        synthetic(seed, 0.9 + 0.01 * seed, [2.0 + seed * spread for spread in spreads])
        for seed in range(3)
    ]
    return build_expectation(experiment, config, observations, "test")


def test_tolerance_is_k_sigma_times_the_seed_std_or_the_floor():
    spreads = [0.1] * (POINTS - 1) + [0.0]
    expectation = synthetic_expectation(spreads)
    metric_std = statistics.stdev([0.9, 0.91, 0.92])
    assert expectation["metric"]["value"] == 0.9  # the fixed seed's, not the mean
    assert expectation["metric"]["tolerance"] == pytest.approx(K_SIGMA * metric_std)
    curve = expectation["curve"]
    assert curve["tolerance"][0] == pytest.approx(K_SIGMA * statistics.stdev([2.0, 2.1, 2.2]))
    assert curve["tolerance"][-1] == LOSS_FLOOR  # seeds agree there: the floor decides
    rule = expectation["tolerance_rule"]
    assert (rule["k_sigma"], rule["loss_floor"], rule["seeds"]) == (K_SIGMA, LOSS_FLOOR, [0, 1, 2])
    assert rule["metric_floor"] == get_experiment("mnist_lstm").band_floor
    assert {"torch", "cpu_model", "date", "git_commit", "command"} <= set(expectation["provenance"])


def test_compare_names_the_point_that_moved_and_by_how_much():
    expectation = synthetic_expectation([0.1] * POINTS)
    curve = list(expectation["curve"]["loss"])
    moved = 2 * expectation["curve"]["tolerance"][7]
    curve[7] += moved
    deviations = compare(expectation, synthetic(0, 0.9, curve))
    exceeded = [deviation for deviation in deviations if deviation.exceeded]
    assert len(exceeded) == 1
    assert exceeded[0].quantity == f"loss point 8/{POINTS} (steps 70-79)"
    assert f"moved by {moved:+.4g}" in exceeded[0].describe()
    unchanged = synthetic(0, 0.9, list(expectation["curve"]["loss"]))
    assert not any(deviation.exceeded for deviation in compare(expectation, unchanged))


def test_a_shorter_curve_fails_the_missing_points():
    expectation = synthetic_expectation([0.1] * POINTS)
    diverged = Observation(0, "diverged", None, expectation["curve"]["loss"][:5], [], 1.0)
    exceeded = [deviation for deviation in compare(expectation, diverged) if deviation.exceeded]
    assert len(exceeded) == 1 + POINTS - 5  # the metric and the points after the divergence


def test_curve_windows_cover_every_step_once():
    windows = curve_windows(147, POINTS)
    assert windows[0][0] == 0 and windows[-1][1] == 147
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert {stop - start for start, stop in windows} <= {7, 8}
    with pytest.raises(ValueError, match="too few"):
        curve_windows(POINTS - 1, POINTS)


def test_a_halved_learning_rate_is_detected():
    """The tolerances are tight enough to catch a real change of the training, not only noise."""
    experiment = get_experiment("mnist_lstm")
    config = regression_config(experiment)
    slower = dataclasses.replace(config, recipe=config.recipe.replace(lr=config.recipe.lr / 2))
    expectation = json.loads((EXPECTATIONS_DIR / "mnist_lstm.json").read_text())
    deviations = compare(expectation, run_regression(experiment, slower))
    assert any(deviation.exceeded for deviation in deviations)


def test_cli_check_fails_on_a_missing_file_and_names_the_command(tmp_path, capsys):
    assert regress_main(["mnist_lstm", "--expectations", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "no expectation file" in captured.out
    assert "python reproduce/regress.py --update mnist_lstm" in captured.err


def test_cli_rejects_an_unknown_experiment(capsys):
    assert regress_main(["no_such_experiment"]) == 2
    assert f"valid: {', '.join(experiments())}" in capsys.readouterr().err


def test_expectation_files_exist_only_for_registered_experiments():
    stored = {path.stem for path in Path(EXPECTATIONS_DIR).glob("*.json")}
    assert stored, f"no expectation files in {EXPECTATIONS_DIR}"
    assert stored <= set(experiments()), "remove the expectation files of removed experiments"
