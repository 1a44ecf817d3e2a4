"""A blown-up run is never recorded as a result: divergence is caught in fewer steps than the
window, every experiment has a worse-than-chance limit on a final metric its evaluation reports,
and a perplexity that overflows is recorded as diverged while the sweep goes on."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from reproduce.harness.cli.run import main
from reproduce.harness.run.experiment import Divergence
from reproduce.harness.run.registry import experiments


def records(out) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in (out / "runs").glob("*.json")}


def test_one_blown_up_step_is_divergence_without_waiting_for_the_window():
    from reproduce.harness.core.divergence import divergence_check

    rule = Divergence()  # window 10, loss_factor 10, step_factor 100
    assert divergence_check(rule, [2.3, 2.0, 50.0], 2) is None  # 22 x: noise for one step
    verdict = divergence_check(rule, [2.3, 2.0, 231.0], 2)
    assert verdict == {
        "step": 2,
        "reason": "training loss 231 at step 2 exceeds 100 x the first step's loss (2.3)",
    }
    assert "not finite" in divergence_check(rule, [2.3, math.inf], 1)["reason"]
    # the window rule still catches a loss that stays high without one huge step
    assert "mean training loss" in divergence_check(rule, [2.3] + [30.0] * 9, 9)["reason"]


def test_a_gnmt_run_of_8_steps_blowing_up_is_diverged_not_ok(tmp_path):
    """The issue's case: lr 1e4 for 2 epochs (8 steps, fewer than the 10-step window): the loss
    went from 92 to 68,718 and the run was recorded "ok" with BLEU 0.074."""
    out = tmp_path / "o"
    argv = ["gnmt", "--preset", "smoke", "--methods", "sqrt", "--batch-sizes", "16", "--quiet"]
    overrides = ["--set", "lr=1e4", "--set", "epochs=2", "--set", "milestones=1.5"]
    assert main([*argv, *overrides, "--out", str(out)]) == 0
    (record,) = records(out).values()
    assert record["total_steps"] == 8
    assert record["status"] == "diverged"
    assert "x the first step's loss" in record["divergence"]["reason"]
    assert record["final"] == {}  # no BLEU of a blown-up model


def test_a_ptb_run_whose_perplexity_overflows_is_diverged_and_the_sweep_goes_on(
    tmp_path, monkeypatch
):
    """lr 1e6: math.exp overflowed in the perplexity and the sweep stopped with a traceback. With
    the training-loss rules switched off, the evaluation itself meets the overflow."""
    ptb = experiments()["ptb_small"]
    lenient = dataclasses.replace(
        ptb.divergence, loss_factor=math.inf, step_factor=math.inf, window=10_000
    )
    monkeypatch.setitem(experiments(), "ptb_small", dataclasses.replace(ptb, divergence=lenient))
    out = tmp_path / "o"
    argv = ["ptb_small", "--preset", "smoke", "--quiet", "--set", "lr=1e6", "--out", str(out)]
    assert main(argv) == 0
    found = records(out)
    assert set(found) == {"sqrt_b20_s0.json", "sqrt_b40_s0.json", "date_b20_s0.json",
                          "date_b40_s0.json"}  # fmt: skip
    for record in found.values():
        assert record["status"] == "diverged", record["divergence"]
        reason = record["divergence"]["reason"]
        assert "not finite" in reason or "far worse than chance" in reason


def test_a_ptb_run_at_lr_1e6_is_diverged_by_its_training_loss(tmp_path):
    out = tmp_path / "o"
    argv = ["ptb_small", "--preset", "smoke", "--quiet", "--set", "lr=1e6", "--out", str(out)]
    assert main(argv) == 0
    found = records(out)
    assert len(found) == 4
    assert {record["status"] for record in found.values()} == {"diverged"}


def test_perplexity_is_inf_where_exp_overflows():
    from reproduce.harness.run.metrics import perplexity

    assert perplexity(1.0) == pytest.approx(math.e)
    assert perplexity(709.0) < math.inf
    assert perplexity(710.0) == math.inf
    assert perplexity(1e300) == math.inf
    assert math.isnan(perplexity(math.nan))


def smoke_bundle(name: str):
    """The smoke preset's model (untrained, seed 0) and data of ``name``."""
    experiment = experiments()[name]
    preset = experiment.presets["smoke"]
    model_config = {**experiment.model_defaults, **preset.model}
    data_config = {**experiment.data_defaults, **preset.data}
    torch.manual_seed(0)
    model = experiment.build_model(model_config)
    return experiment, model, model_config, experiment.build_data("local", None, data_config)


@pytest.mark.parametrize("name", sorted(experiments()))
def test_every_experiment_has_a_chance_limit_an_untrained_model_passes_and_a_blown_up_one_fails(
    name,
):
    """The limit sits at "worse than chance": an untrained model is within it; the same model
    with its weights blown up (x 1000) is not, by the limit or by a value that is not finite."""
    from reproduce.harness.core.divergence import final_metric_check

    experiment, model, model_config, data = smoke_bundle(name)
    assert experiment.divergence.chance_limits, f"{name} has no worse-than-chance limit"
    model.eval()
    with torch.no_grad():
        untrained = experiment.evaluate(model, data.test, torch.device("cpu"), 1024)
        for rule in experiment.divergence.chance_limits:
            assert rule.metric in untrained, f"{name}: evaluate does not report {rule.metric}"
        assert final_metric_check(experiment, untrained, 1, model_config) is None, untrained
        for parameter in model.parameters():
            parameter.mul_(1000.0)
        blown = experiment.evaluate(model, data.test, torch.device("cpu"), 1024)
    verdict = final_metric_check(experiment, blown, 1, model_config)
    assert verdict is not None, blown
    assert "far worse than chance" in verdict["reason"] or "not finite" in verdict["reason"]
