"""The gradient noise scale estimator (date.noise) and the trainer's probe (noise_probe.py): the
two-size formulas, the smoothing, the fused squared norm, each way the probe takes its two sizes,
and, on linear regression with Gaussian noise where B_simple is known in closed form, that the
estimator driven through the trainer's own micro-batch accumulation recovers it."""

from __future__ import annotations

import math
import statistics
import types

import pytest
import torch
from torch import nn

from date.noise import (
    NoiseScaleEMA,
    TwoSizeEstimate,
    pooled_noise_scale,
    smoothed_noise_scale,
    squared_grad_norm,
    two_size_estimate,
)
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.experiment import Batch
from reproduce.harness.run.noise_probe import CURVES, NoiseProbe
from reproduce.harness.run.trainer import Progress, accumulate_gradients

# ---- the two-size estimate (McCandlish et al. 2018, Appendix A.1) -------------------------------


@pytest.mark.parametrize(
    ("grad_sq", "trace", "small", "big"), [(1.0, 33.0, 8, 64), (0.02, 5.0, 1, 3), (4.0, 0.0, 5, 6)]
)
def test_expected_squared_norms_give_back_signal_and_noise_exactly(grad_sq, trace, small, big):
    # E|G_B|^2 = |G|^2 + tr(Sigma) / B: fed the expectations, the estimate is exact.
    estimate = two_size_estimate(grad_sq + trace / small, grad_sq + trace / big, small, big)
    assert estimate.grad_sq == pytest.approx(grad_sq, rel=1e-12, abs=1e-12)
    assert estimate.trace == pytest.approx(trace, rel=1e-12, abs=1e-12)


def test_the_formulas_on_numbers_worked_by_hand():
    # |G|^2 = (4 * 1.5 - 2 * 2.5) / (4 - 2) = 0.5; tr = (2.5 - 1.5) / (1/2 - 1/4) = 4.
    assert two_size_estimate(2.5, 1.5, 2, 4) == TwoSizeEstimate(grad_sq=0.5, trace=4.0)
    # A big-batch norm above the small one (noise) gives negative estimates, kept as they are.
    assert two_size_estimate(1.0, 2.0, 2, 4).trace == -4.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((1.0, 0.5, 4, 4), "must differ"),
        ((1.0, 0.5, 8, 4), "must differ"),
        ((1.0, 0.5, 0, 4), "positive"),
        ((-1.0, 0.5, 2, 4), "small_sq_norm"),
        ((1.0, math.nan, 2, 4), "big_sq_norm"),
        ((1.0, 0.5, 2, math.inf), "positive"),
    ],
)
def test_bad_inputs_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        two_size_estimate(*arguments)


# ---- the smoothing ------------------------------------------------------------------------------


def test_bias_corrected_averages_of_a_constant_are_that_constant_from_the_first_step():
    average = NoiseScaleEMA(decay=0.9)
    assert average.noise_scale is None and average.grad_sq is None
    for _ in range(5):
        average.update(TwoSizeEstimate(grad_sq=2.0, trace=50.0))
        assert average.grad_sq == pytest.approx(2.0)
        assert average.trace == pytest.approx(50.0)
        assert average.noise_scale == pytest.approx(25.0)


def test_each_estimate_is_averaged_on_its_own_then_divided():
    average = NoiseScaleEMA(decay=0.5)
    for grad_sq, trace in [(1.0, 10.0), (3.0, 2.0)]:
        average.update(TwoSizeEstimate(grad_sq, trace))
    # raw averages: grad_sq 0.5 * (0.5 * 1) + 0.5 * 3 = 1.75; trace 0.5 * 5 + 1 = 3.5;
    # corrected by 1 / (1 - 0.25); their ratio is 2, not the mean of the ratios (10 and 2/3).
    assert average.grad_sq == pytest.approx(1.75 / 0.75)
    assert average.trace == pytest.approx(3.5 / 0.75)
    assert average.noise_scale == pytest.approx(2.0)


def test_no_noise_scale_until_both_averages_are_positive_and_non_finite_steps_skipped():
    average = NoiseScaleEMA(decay=0.0)  # decay 0: the last step alone
    average.update(TwoSizeEstimate(grad_sq=-0.1, trace=5.0))
    assert average.noise_scale is None  # the signal is lost in the noise so far
    average.update(TwoSizeEstimate(grad_sq=0.5, trace=-1.0))
    assert average.noise_scale is None
    average.update(TwoSizeEstimate(grad_sq=0.5, trace=5.0))
    average.update(TwoSizeEstimate(grad_sq=math.nan, trace=5.0))
    assert average.updates == 3 and average.noise_scale == pytest.approx(10.0)


@pytest.mark.parametrize("decay", [-0.1, 1.0, math.nan])
def test_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        NoiseScaleEMA(decay)


def test_curve_helpers_skip_steps_without_an_estimate():
    grad_sq = [None, 1.0, None, 3.0]
    trace = [None, 10.0, None, 2.0]
    assert smoothed_noise_scale(grad_sq, trace, decay=0.5) == pytest.approx([None, 10.0, 10.0, 2.0])
    assert pooled_noise_scale(grad_sq, trace) == (pytest.approx(12.0 / 4.0), 2)
    assert pooled_noise_scale([None], [None]) == (None, 0)
    with pytest.raises(ValueError, match="length"):
        smoothed_noise_scale([1.0], [])


def test_squared_grad_norm_is_the_sum_of_squares_scaled_without_touching_the_gradients():
    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3, bias=False))
    model(torch.randn(7, 5)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    expected = sum(float(g.double().square().sum()) for g in grads)
    norm = squared_grad_norm(model.parameters())
    assert norm.shape == () and norm.dtype == torch.float32
    assert float(norm) == pytest.approx(expected, rel=1e-6)
    assert float(squared_grad_norm(model.parameters(), scale=0.25)) == pytest.approx(
        expected / 16, rel=1e-6
    )
    for parameter, before in zip(model.parameters(), grads, strict=True):
        assert torch.equal(parameter.grad, before)
    with pytest.raises(ValueError, match="backward"):
        squared_grad_norm(nn.Linear(2, 2).parameters())


# ---- linear regression with known gradient noise ------------------------------------------------
#
# Model w . x, per-example loss (w . x - y)^2 / 2 with x ~ N(0, I_d), y = w* . x + eps, eps ~
# N(0, sigma^2). At w = w* + delta the per-example gradient is (x x^T) delta - eps x, so
# G = delta and, by Isserlis' theorem, Sigma = (|delta|^2 + sigma^2) I + delta delta^T:
# tr(Sigma) = d (|delta|^2 + sigma^2) + |delta|^2 and B_simple = tr(Sigma) / |delta|^2.

DIMENSION, SIGMA, BATCH, MICRO_BATCH, STEPS = 16, 1.0, 64, 8, 400
#: Tolerance, in standard errors of the estimate: the standard error is measured from the
#: spread of the run's own per-step estimates (delta method for the ratio; for the EMA, the same
#: variance over its effective sample size (1 + decay) / (1 - decay)). 3 standard errors make a
#: miss by chance a 0.3% event; the test also requires that the standard error itself is small
#: (under 10% of the truth, it is about 7%), so the tolerance cannot grow to hide a wrong answer.
STANDARD_ERRORS = 3.0
MAX_RELATIVE_STANDARD_ERROR = 0.10


def regression_loss(model: nn.Module, batch: Batch, state: object) -> tuple:
    inputs, targets = batch.tensors
    return 0.5 * ((model(inputs).squeeze(1) - targets) ** 2).sum(), batch.size, None


@pytest.fixture(scope="module")
def regression_run() -> dict:
    """STEPS steps at fixed parameters (no update: the truth stays put), through
    accumulate_gradients in micro-batches, the probe reading its two sizes as in training."""
    generator = torch.Generator().manual_seed(0)
    w_star = torch.randn(DIMENSION, generator=generator, dtype=torch.float64)
    delta = torch.randn(DIMENSION, generator=generator, dtype=torch.float64)
    delta /= delta.norm()
    model = nn.Linear(DIMENSION, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_((w_star + delta)[None])
    experiment = types.SimpleNamespace(loss=regression_loss)
    device = resolve_device("cpu")
    run = Progress()
    probe = NoiseProbe("micro-batch")
    probe.attach(run)
    for step in range(STEPS):
        x = torch.randn(BATCH, DIMENSION, generator=generator, dtype=torch.float64)
        y = x @ w_star + SIGMA * torch.randn(BATCH, generator=generator, dtype=torch.float64)
        model.zero_grad(set_to_none=True)
        accumulate_gradients(experiment, model, Batch((x, y)), MICRO_BATCH, {}, device, noise=probe)
        probe.reduced(model.parameters(), BATCH, step)
        run.curves["step"].append(step)
    probe.flush()
    grad_sq = float(delta @ delta)
    trace = DIMENSION * (grad_sq + SIGMA**2) + grad_sq
    return {"run": run, "grad_sq": grad_sq, "trace": trace, "noise_scale": trace / grad_sq}


def test_each_step_has_both_estimates_and_the_record_says_which_sizes(regression_run):
    run = regression_run["run"]
    assert all(len(run.curves[name]) == STEPS for name in CURVES)
    assert None not in run.curves["noise_grad_sq"] and None not in run.curves["noise_trace"]
    assert run.gradient_noise["sizes"] == [{"from_step": 0, "small": MICRO_BATCH, "big": BATCH}]
    assert run.gradient_noise["small_batch"].startswith("the first micro-batch")


def test_signal_and_noise_estimates_are_unbiased(regression_run):
    curves = regression_run["run"].curves
    for name, truth in (("noise_grad_sq", "grad_sq"), ("noise_trace", "trace")):
        values = curves[name]
        error = statistics.stdev(values) / math.sqrt(len(values))
        assert abs(statistics.fmean(values) - regression_run[truth]) < STANDARD_ERRORS * error


def test_estimator_recovers_the_analytic_noise_scale(regression_run):
    curves = regression_run["run"].curves
    signal, noise = curves["noise_grad_sq"], curves["noise_trace"]
    mean_signal, mean_noise = statistics.fmean(signal), statistics.fmean(noise)
    pooled, measured = pooled_noise_scale(signal, noise)
    assert measured == STEPS and pooled == pytest.approx(mean_noise / mean_signal)
    # delta-method variance of mean_noise / mean_signal
    variance = (
        statistics.variance(noise) / mean_signal**2
        + mean_noise**2 * statistics.variance(signal) / mean_signal**4
        - 2 * mean_noise * statistics.covariance(signal, noise) / mean_signal**3
    ) / STEPS
    truth = regression_run["noise_scale"]
    assert truth == pytest.approx(33.0)
    error = math.sqrt(variance)
    assert error < MAX_RELATIVE_STANDARD_ERROR * truth
    assert abs(pooled - truth) < STANDARD_ERRORS * error
    # the smoothed curve the record carries, at its last step (decay 0.99)
    decay = regression_run["run"].gradient_noise["decay"]
    effective_steps = (1 + decay) / (1 - decay)
    ema_error = error * math.sqrt(STEPS / effective_steps)
    assert abs(curves["noise_scale"][-1] - truth) < STANDARD_ERRORS * ema_error


# ---- the probe's modes --------------------------------------------------------------------------


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2).double()


def backward(model: nn.Module, inputs: torch.Tensor) -> None:
    model(inputs).square().sum().backward()


def test_one_gradient_size_per_step_records_no_curves():
    model, run = small_model(), Progress()
    probe = NoiseProbe("micro-batch")
    probe.attach(run)
    for step in range(3):
        backward(model, torch.randn(4, 3, dtype=torch.float64))
        probe.accumulated(model.parameters(), 4, 4)  # one micro-batch: no first_micro_batch
        probe.reduced(model.parameters(), 4, step)
        run.curves["step"].append(step)
    probe.flush()
    assert not set(CURVES) & set(run.curves) and run.gradient_noise is None


def test_curves_start_with_none_for_steps_before_the_first_estimate():
    model, run = small_model(), Progress()
    probe = NoiseProbe("micro-batch")
    probe.attach(run)
    for step, micro_batches in enumerate([1, 1, 2, 2]):
        model.zero_grad()
        backward(model, torch.randn(2, 3, dtype=torch.float64))
        if micro_batches == 2:
            probe.first_micro_batch(model.parameters(), 2, 2)
            backward(model, torch.randn(2, 3, dtype=torch.float64))
        probe.reduced(model.parameters(), 2 * micro_batches, step)
        run.curves["step"].append(step)
        if step == 1:
            probe.flush()  # nothing measured yet: still no curves
            assert "noise_scale" not in run.curves
    probe.flush()
    assert run.curves["noise_grad_sq"][:2] == [None, None]
    assert all(value is not None for value in run.curves["noise_trace"][2:])
    assert len(run.curves["noise_scale"]) == 4


def test_replicas_take_the_rank_gradient_before_the_reduce_and_the_global_one_after():
    model = small_model()
    backward(model, torch.randn(4, 3, dtype=torch.float64))
    local = float(squared_grad_norm(model.parameters()))
    probe = NoiseProbe("replicas", world_size=4)
    probe.attach(Progress())
    probe.accumulated(model.parameters(), items=4, examples=4)
    for parameter in model.parameters():  # what an all-reduce would leave: another gradient
        parameter.grad.mul_(0.5)
    probe.reduced(model.parameters(), 4, step=0)
    (pair,) = probe._pending
    assert float(pair.small) == pytest.approx(local)
    assert float(pair.big) == pytest.approx(local / 4)
    assert (pair.small_examples, pair.big_examples) == (4, 16)


def test_ddp_hook_reads_the_rank_gradient_and_leaves_the_update_unchanged(tmp_path):
    """DDP in one gloo process (its all-reduce is then the identity; the probe is told of 2
    ranks so that the global batch is twice the share): the rank gradient the hook reads, summed
    over items and divided by them here, is the gradient of the plain module, which DDP with the
    hook reproduces."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        reference, ddp = small_model(), nn.parallel.DistributedDataParallel(small_model())
        run = Progress()
        probe = NoiseProbe.for_run(ddp, types.SimpleNamespace(enabled=True, world_size=2), run)
        assert probe.mode == "ddp"
        inputs = torch.randn(6, 3, dtype=torch.float64)
        # two items per example, so that items and examples differ
        experiment = types.SimpleNamespace(
            loss=lambda model, batch, state: (
                model(batch.tensors[0]).square().sum(),
                2 * batch.size,
                None,
            )
        )
        device = resolve_device("cpu")
        # micro-batches of 3: the first under no_sync, the hook on the second
        accumulate_gradients(experiment, ddp, Batch((inputs,)), 3, {}, device, noise=probe)
        (reference(inputs).square().sum() / 12).backward()
        for mine, theirs in zip(ddp.module.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-12, atol=1e-12)
        probe.reduced(ddp.module.parameters(), examples=6, step=0)
        (pair,) = probe._pending
        expected = float(squared_grad_norm(reference.parameters()))
        assert float(pair.small) == pytest.approx(expected, rel=1e-6)
        assert float(pair.big) == pytest.approx(expected, rel=1e-6)
        assert (pair.small_examples, pair.big_examples) == (6, 12)
        probe.flush()
        assert run.gradient_noise["small_batch"].startswith("rank 0's share")
    finally:
        dist.destroy_process_group()
