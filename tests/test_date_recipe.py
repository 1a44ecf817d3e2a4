"""date.Recipe: validation messages, dict round trip, replace."""

import json
import math

import pytest

from date import DECAYS, OPTIMIZERS, Recipe

pytestmark = pytest.mark.filterwarnings("error")

BASE = {"batch_size": 128, "lr": 0.1, "epochs": 90}


def make(**changes):
    return Recipe(**{**BASE, **changes})


def test_defaults_and_normalisation():
    recipe = make(lr=1, epochs=13, milestones=[3, 6], betas=[0.8, 0.99])
    assert recipe.lr == 1.0 and isinstance(recipe.lr, float)
    assert recipe.milestones == (3.0, 6.0)
    assert recipe.betas == (0.8, 0.99)
    assert recipe.decay == "constant" and recipe.optimizer == "sgd"
    assert recipe.warmup_epochs == 0.0 and recipe.warmup_start_factor == 0.0
    assert recipe.grad_clip_norm is None


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "256", None])
def test_batch_size_must_be_a_positive_integer(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        make(batch_size=batch_size)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": math.nan}, "lr must be finite"),
        ({"lr": math.inf}, "lr must be finite"),
        ({"lr": -0.1}, "lr must be >= 0"),
        ({"lr": "0.1"}, "lr must be a real number"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"epochs": math.inf}, "epochs must be finite"),
        ({"warmup_epochs": -1}, "warmup_epochs must be >= 0"),
        ({"warmup_epochs": 91}, "warmup_epochs=91 exceeds the epoch budget epochs=90"),
        ({"warmup_start_factor": 1.5}, r"warmup_start_factor must be in \[0, 1\]"),
        ({"final_lr_factor": -0.1}, r"final_lr_factor must be in \[0, 1\]"),
        ({"poly_power": 0}, "poly_power must be > 0"),
        ({"decay_rate": 0}, r"decay_rate must be in \(0, 1\]"),
        ({"decay_rate": 1.15}, r"decay_rate must be in \(0, 1\]"),
        ({"decay_start_epoch": 95}, "decay_start_epoch must be in"),
        ({"milestone_factor": 0}, r"milestone_factor must be in \(0, 1\]"),
        ({"milestones": (30, 60, 100)}, r"milestones\[2\]=100 is outside the epoch budget"),
        ({"milestones": (0, 30)}, r"milestones\[0\]=0 is outside the epoch budget"),
        ({"milestones": (60, 30)}, "milestones must be strictly increasing"),
        ({"milestones": (30, 30)}, "milestones must be strictly increasing"),
        ({"milestones": 30}, "milestones must be a sequence"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"betas": (0.9,)}, "betas must be two numbers"),
        ({"betas": (0.9, 1.0)}, r"betas\[1\] must be in \[0, 1\)"),
        ({"eps": 0}, "eps must be > 0"),
        ({"trust_coefficient": 0}, "trust_coefficient must be > 0"),
        ({"grad_clip_norm": 0}, "grad_clip_norm must be None or > 0"),
        ({"staircase": "yes"}, "staircase must be a bool"),
    ],
)
def test_invalid_fields_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        make(**changes)


def test_unknown_decay_lists_the_choices():
    with pytest.raises(ValueError) as error:
        make(decay="linear")
    assert "decay must be one of" in str(error.value) and "'linear'" in str(error.value)
    for name in DECAYS:
        assert repr(name) in str(error.value)


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ValueError) as error:
        make(optimizer="rmsprop")
    assert "optimizer must be one of" in str(error.value)
    for name in OPTIMIZERS:
        assert repr(name) in str(error.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nesterov": True}, "nesterov=True requires momentum > 0"),
        ({"optimizer": "adam", "momentum": 0.9}, "momentum=0.9 is not used by optimizer 'adam'"),
        ({"optimizer": "lamb", "nesterov": True, "momentum": 0.9}, "momentum=0.9 is not used"),
        ({"optimizer": "adagrad", "nesterov": True}, "nesterov=True is not supported"),
    ],
)
def test_optimizer_specific_combinations(changes, message):
    with pytest.raises(ValueError, match=message):
        make(**changes)


def test_momentum_optimizers_accept_nesterov():
    assert make(optimizer="lars", momentum=0.9, nesterov=True).nesterov
    assert make(optimizer="sgd", momentum=0.9, nesterov=True).nesterov


def test_warmup_equal_to_budget_is_allowed():
    assert make(warmup_epochs=90).warmup_epochs == 90.0


def test_dict_round_trip_is_json_safe():
    recipe = make(
        warmup_epochs=5,
        decay="multistep",
        milestones=(30, 60, 80),
        optimizer="lars",
        momentum=0.9,
        weight_decay=5e-5,
        betas=(0.8, 0.98),
        grad_clip_norm=5,
    )
    data = recipe.to_dict()
    assert data["milestones"] == [30.0, 60.0, 80.0] and data["betas"] == [0.8, 0.98]
    assert Recipe.from_dict(json.loads(json.dumps(data))) == recipe
    assert Recipe.from_dict(data).to_dict() == data


def test_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ValueError, match=r"unknown Recipe fields \['learning_rate'\]") as error:
        Recipe.from_dict({**BASE, "learning_rate": 0.1})
    assert "valid fields are" in str(error.value) and "'warmup_epochs'" in str(error.value)
    with pytest.raises(ValueError, match=r"missing required Recipe fields \['epochs'\]"):
        Recipe.from_dict({"batch_size": 128, "lr": 0.1})


def test_replace_revalidates_and_rejects_unknown_fields():
    recipe = make(warmup_epochs=5)
    assert recipe.replace(lr=0.2).lr == 0.2 and recipe.lr == 0.1
    with pytest.raises(ValueError, match="warmup_epochs=5 exceeds the epoch budget epochs=4"):
        recipe.replace(epochs=4)
    with pytest.raises(ValueError, match="unknown Recipe fields"):
        recipe.replace(warmup=1)


def test_recipe_is_frozen_and_hashable():
    recipe = make()
    with pytest.raises(AttributeError):
        recipe.lr = 1.0  # type: ignore[misc]
    assert hash(recipe) == hash(make())
