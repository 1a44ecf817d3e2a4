"""date.scale: every method by hand, the DATE invariants over a batch ladder, and bad input."""

import math

import pytest

from date import ALIASES, METHODS, Recipe, canonical_method, scale, warmup_steps

pytestmark = pytest.mark.filterwarnings("error")

# Tuned at batch 128: peak lr 0.1, 2 warmup epochs, 40-epoch budget, poly decay, LARS.
BASE = Recipe(
    batch_size=128,
    lr=0.1,
    epochs=40,
    warmup_epochs=2,
    decay="poly",
    optimizer="lars",
    momentum=0.9,
    weight_decay=5e-4,
)

# 128 -> 1024: k = 8, sqrt(8) = 2.8284271247461903.
SQRT_8 = 2.8284271247461903


@pytest.mark.parametrize(
    ("method", "lr", "warmup_epochs"),
    [
        ("none", 0.1, 2.0),  # unchanged
        ("linear", 0.8, 2.0),  # 0.1 * 8, warmup epochs unchanged
        ("linear-nowarmup", 0.8, 0.0),
        ("sqrt", 0.1 * SQRT_8, 2.0),  # 0.28284271247461906
        ("sqrt-nowarmup", 0.1 * SQRT_8, 0.0),
        ("date", 0.1 * SQRT_8, 16.0),  # warmup 2 * 8 = 16 epochs
        ("legw", 0.1 * SQRT_8, 16.0),  # alias of date
    ],
)
def test_each_method_at_k_8(method, lr, warmup_epochs):
    scaled = scale(BASE, 1024, method)
    assert scaled.batch_size == 1024
    assert scaled.lr == pytest.approx(lr, rel=1e-15)
    assert scaled.warmup_epochs == warmup_epochs
    # Everything else is as tuned.
    unchanged = {"batch_size", "lr", "warmup_epochs"}
    for name, value in BASE.to_dict().items():
        if name not in unchanged:
            assert scaled.to_dict()[name] == value, name


@pytest.mark.parametrize("method", [*METHODS, "legw"])
def test_k_equal_1_keeps_the_recipe_except_nowarmup(method):
    scaled = scale(BASE, 128, method)
    if method.endswith("nowarmup"):
        assert scaled == BASE.replace(warmup_epochs=0.0)
    else:
        assert scaled == BASE


def test_scaling_down_k_below_1():
    # 128 -> 32: k = 0.25, sqrt = 0.5 -> lr 0.05, warmup 2 * 0.25 = 0.5 epochs.
    scaled = scale(BASE, 32)
    assert scaled.lr == pytest.approx(0.05, rel=1e-15)
    assert scaled.warmup_epochs == 0.5
    # linear: 0.1 * 0.25 = 0.025
    assert scale(BASE, 32, "linear").lr == pytest.approx(0.025, rel=1e-15)


def test_non_power_of_two_batch():
    # 128 -> 1000: k = 7.8125, sqrt(k) = 2.7950849718747373, warmup 15.625 epochs.
    scaled = scale(BASE, 1000)
    assert scaled.lr == pytest.approx(0.27950849718747373, rel=1e-14)
    assert scaled.warmup_epochs == 15.625


# ImageNet example of the brief: base 256, warmup 5/16 epoch, N = 1,281,167.
IMAGENET = Recipe(batch_size=256, lr=0.1, epochs=90, warmup_epochs=0.3125)
DATASET_SIZE = 1281167
LADDER = [64, 128, 256, 512, 1000, 1024, 2048, 3000, 4096, 8192, 16384, 32768, 65536]


@pytest.mark.parametrize("batch_size", LADDER)
def test_date_keeps_warmup_steps_constant(batch_size):
    k = batch_size / 256
    scaled = scale(IMAGENET, batch_size, "date")
    # Warmup epochs grow as k and the peak lr as sqrt(k) ...
    assert scaled.warmup_epochs == pytest.approx(0.3125 * k, rel=1e-15)
    assert scaled.lr == pytest.approx(0.1 * math.sqrt(k), rel=1e-15)
    # ... so the warmup lasts 0.3125 * 1281167 / 256 = 1563.9245... steps at every batch size.
    steps = warmup_steps(scaled, DATASET_SIZE / batch_size)
    assert steps == pytest.approx(0.3125 * DATASET_SIZE / 256, rel=1e-12)
    assert steps == pytest.approx(1563.92456054687, rel=1e-12)


@pytest.mark.parametrize("batch_size", LADDER)
@pytest.mark.parametrize("method", ["none", "linear", "sqrt"])
def test_baselines_keep_warmup_epochs_so_warmup_steps_shrink(method, batch_size):
    k = batch_size / 256
    scaled = scale(IMAGENET, batch_size, method)
    assert scaled.warmup_epochs == 0.3125
    steps = warmup_steps(scaled, DATASET_SIZE / batch_size)
    assert steps == pytest.approx(1563.92456054687 / k, rel=1e-12)


def test_date_warmup_equal_to_budget_is_accepted():
    # 0.3125 * 288 = 90 epochs exactly = the budget (batch 73728 = 288 * 256).
    assert scale(IMAGENET, 73728).warmup_epochs == 90.0


def test_warmup_beyond_budget_names_the_batch():
    # 128 -> 65536: k = 512, warmup 1 * 512 = 512 epochs > 90.
    recipe = Recipe(batch_size=128, lr=0.1, epochs=90, warmup_epochs=1)
    with pytest.raises(ValueError) as error:
        scale(recipe, 65536, "legw")
    message = str(error.value)
    assert message.startswith(
        "method 'date' at batch_size=65536 (k=512 x base 128) gives warmup_epochs=512 > epochs=90"
    )
    assert "lower warmup_epochs at the base batch" in message
    # The baselines keep the warmup in epochs, so they never exceed the budget.
    assert scale(recipe, 65536, "sqrt").warmup_epochs == 1.0


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "1024", None])
def test_batch_size_must_be_a_positive_integer(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        scale(BASE, batch_size)


def test_unknown_method_lists_methods_and_aliases():
    with pytest.raises(ValueError) as error:
        scale(BASE, 1024, "cubic")
    message = str(error.value)
    assert "got 'cubic'" in message
    for name in [*METHODS, *ALIASES]:
        assert repr(name) in message


def test_canonical_method():
    assert canonical_method("legw") == "date"
    assert canonical_method("DATE") == "date"
    assert canonical_method(" sqrt-nowarmup ") == "sqrt-nowarmup"
    assert "legw" not in METHODS and ALIASES == {"legw": "date"}
    with pytest.raises(ValueError, match="method must be one of"):
        canonical_method(None)  # type: ignore[arg-type]
