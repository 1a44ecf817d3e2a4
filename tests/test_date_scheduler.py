"""date.DateScheduler: equals lr_at at every step, and resumes exactly from its state_dict."""

import io
import json

import pytest
import torch

from date import DateScheduler, Recipe, build_optimizer, lr_at, scale, total_steps

# Torch's scheduler warnings (order of step calls, get_lr outside step, deprecations) are errors.
pytestmark = pytest.mark.filterwarnings("error")

BASE = Recipe(
    batch_size=128,
    lr=0.1,
    epochs=6,
    warmup_epochs=1,
    decay="poly",
    optimizer="sgd",
    momentum=0.9,
    weight_decay=1e-4,
)
# DATE at batch 512 on 1000 examples: 1.953125 steps per epoch, warmup 4 epochs = 7.8125 steps.
RECIPE = scale(BASE, 512)
STEPS_PER_EPOCH = 1000 / 512


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))


def train_step(module, optimizer, scheduler):
    """One iteration in the standard order; returns the lr the optimizer step used."""
    used = [group["lr"] for group in optimizer.param_groups]
    optimizer.zero_grad()
    inputs = torch.linspace(-1, 1, 6).reshape(2, 3)
    module(inputs).pow(2).mean().backward()
    optimizer.step()
    scheduler.step()
    return used


def uninterrupted(steps):
    module = model()
    optimizer = build_optimizer(module, RECIPE)
    scheduler = DateScheduler(optimizer, RECIPE, STEPS_PER_EPOCH)
    return [train_step(module, optimizer, scheduler) for _ in range(steps)]


def test_lr_equals_lr_at_at_every_step():
    steps = total_steps(RECIPE, STEPS_PER_EPOCH) + 3  # 11 steps and 3 past the end
    for step, used in enumerate(uninterrupted(steps)):
        expected = lr_at(RECIPE, step, STEPS_PER_EPOCH)
        assert used == [expected, expected], step
    # Hand check: step 0 -> 0 (ramp from 0); step 4 -> 0.2 * 4 / 7.8125 = 0.1024.
    lrs = [used[0] for used in uninterrupted(5)]
    assert lrs[0] == 0.0
    assert lrs[4] == pytest.approx(0.1024, rel=1e-14)


def test_get_last_lr_and_lr_scale():
    parameter = torch.nn.Parameter(torch.ones(2, 2))
    optimizer = torch.optim.SGD(
        [{"params": [parameter]}, {"params": [torch.nn.Parameter(torch.ones(2))], "lr_scale": 0.5}],
        lr=1.0,
    )
    recipe = Recipe(batch_size=1, lr=0.4, epochs=3, warmup_epochs=1)
    scheduler = DateScheduler(optimizer, recipe, steps_per_epoch=4)
    for step in range(6):
        expected = lr_at(recipe, step, 4)  # 0, 0.1, 0.2, 0.3, 0.4, 0.4
        assert scheduler.get_last_lr() == [expected, 0.5 * expected]
        assert [group["lr"] for group in optimizer.param_groups] == [expected, 0.5 * expected]
        optimizer.step()
        scheduler.step()
    assert scheduler.last_epoch == 6


def plain(value):
    """True when `value` is made only of JSON-like Python values."""
    if isinstance(value, dict):
        return all(isinstance(key, str) and plain(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str))


def test_state_dict_is_plain_and_json_safe():
    module = model()
    optimizer = build_optimizer(module, RECIPE)
    scheduler = DateScheduler(optimizer, RECIPE, STEPS_PER_EPOCH)
    train_step(module, optimizer, scheduler)
    state = scheduler.state_dict()
    assert plain(state)
    assert state["recipe"] == RECIPE.to_dict()
    assert state["last_epoch"] == 1 and state["steps_per_epoch"] == STEPS_PER_EPOCH
    assert json.loads(json.dumps(state)) == state


@pytest.mark.parametrize("restore_optimizer", [True, False])
@pytest.mark.parametrize("interrupt_at", [1, 5, 9])
def test_restored_scheduler_continues_the_same_sequence(interrupt_at, restore_optimizer):
    steps = total_steps(RECIPE, STEPS_PER_EPOCH) + 2
    expected = uninterrupted(steps)

    module = model()
    optimizer = build_optimizer(module, RECIPE)
    scheduler = DateScheduler(optimizer, RECIPE, STEPS_PER_EPOCH)
    seen = [train_step(module, optimizer, scheduler) for _ in range(interrupt_at)]
    buffer = io.BytesIO()
    torch.save(
        {
            "model": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    # A new process: fresh model, optimizer and scheduler (built from a different recipe to show
    # that the checkpoint's recipe wins), then the checkpoint.
    module = model()
    module.load_state_dict(checkpoint["model"])
    other = RECIPE.replace(lr=5.0)
    optimizer = build_optimizer(module, other)
    scheduler = DateScheduler(optimizer, other, 1.0)
    if restore_optimizer:
        optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    assert scheduler.recipe == RECIPE and scheduler.steps_per_epoch == STEPS_PER_EPOCH
    seen += [train_step(module, optimizer, scheduler) for _ in range(steps - interrupt_at)]
    assert seen == expected


def test_resuming_with_last_epoch_sets_the_next_step():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    scheduler = DateScheduler(optimizer, RECIPE, STEPS_PER_EPOCH, last_epoch=3)
    assert scheduler.last_epoch == 4
    assert optimizer.param_groups[0]["lr"] == lr_at(RECIPE, 4, STEPS_PER_EPOCH)


def test_calling_get_lr_directly_warns_like_torch():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    scheduler = DateScheduler(optimizer, RECIPE, STEPS_PER_EPOCH)
    with pytest.warns(UserWarning, match="get_last_lr"):
        scheduler.get_lr()


def test_scheduler_step_before_optimizer_step_warns_like_torch():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    scheduler = DateScheduler(optimizer, RECIPE, STEPS_PER_EPOCH)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        scheduler.step()


def test_bad_arguments():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match=r"recipe must be a date\.Recipe"):
        DateScheduler(optimizer, RECIPE.to_dict(), STEPS_PER_EPOCH)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps_per_epoch must be finite and > 0"):
        DateScheduler(optimizer, RECIPE, 0)
    scheduler = DateScheduler(optimizer, RECIPE, STEPS_PER_EPOCH)
    with pytest.raises(ValueError, match="state is missing"):
        scheduler.load_state_dict({"last_epoch": 3})


def test_the_scheduler_is_date_scheduler_s_and_the_pure_schedule_does_not_import_it():
    import date.schedule
    import date.scheduler

    assert date.scheduler.DateScheduler is DateScheduler
    assert issubclass(DateScheduler, torch.optim.lr_scheduler.LRScheduler)
    assert not hasattr(date.schedule, "DateScheduler")  # one way: scheduler imports schedule
