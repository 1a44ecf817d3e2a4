"""`DateScheduler`: a torch LRScheduler that sets every step's learning rate from `date.lr_at`.

Kept apart from `date.schedule` so that the pure schedule, the planner and the CLI do not import
torch (`date.DateScheduler` loads this module on first use).
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from date.recipe import Recipe
from date.schedule import _check_steps_per_epoch, lr_at

# Entries of `DateScheduler.state_dict()`; all are plain Python values (the recipe as a dict), so
# the state survives torch.save / torch.load(weights_only=True) and JSON.
_STATE_KEYS = ("recipe", "steps_per_epoch", "last_epoch", "_step_count", "base_lrs", "_last_lr")


class DateScheduler(LRScheduler):
    """Set each param group's lr to ``lr_at(recipe, step, steps_per_epoch) * group["lr_scale"]``.

    `step` is ``self.last_epoch``: torch's LRScheduler counts scheduler steps in ``last_epoch``,
    and here one scheduler step is one optimizer step. ``lr_scale`` is an optional per-group key
    (default 1.0). Create the scheduler after the optimizer (construction sets the lr for step 0)
    and call ``optimizer.step(); scheduler.step()`` every iteration, as for any torch scheduler.
    With ``last_epoch=n`` (torch's resume convention) the first lr set is the one for step n + 1.

    `state_dict()` holds only plain values (the recipe as `Recipe.to_dict()`), so it can be saved
    with torch.save and read with ``torch.load(..., weights_only=True)``; `load_state_dict` restores
    the recipe and step and re-applies that step's lr to the optimizer, so a scheduler rebuilt in a
    new process continues the same lr sequence even before the optimizer state is loaded.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        recipe: Recipe,
        steps_per_epoch: float,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(recipe, Recipe):
            raise ValueError(f"recipe must be a date.Recipe, got {type(recipe).__name__}")
        self.recipe = recipe
        self.steps_per_epoch = _check_steps_per_epoch(steps_per_epoch)
        if last_epoch != -1:
            # torch requires "initial_lr" in every group to resume; the lr here comes from the
            # recipe, so record the optimizer's current lr instead of failing with a KeyError.
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        super().__init__(optimizer, last_epoch)

    def _lrs(self) -> list[float]:
        lr = lr_at(self.recipe, self.last_epoch, self.steps_per_epoch)
        return [lr * group.get("lr_scale", 1.0) for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The learning rates for step ``last_epoch`` (read the current ones with `get_last_lr`)."""
        if not self._get_lr_called_within_step:
            # Same warning as torch's own schedulers give for a direct get_lr() call.
            warnings.warn(
                "To get the last learning rate computed by the scheduler, "
                "please use `get_last_lr()`.",
                UserWarning,
                stacklevel=2,
            )
        return self._lrs()

    # The schedule is closed-form: torch's deprecated step(epoch) path uses this.
    def _get_closed_form_lr(self) -> list[float]:
        return self._lrs()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler state as plain values (recipe as a dict); safe for weights_only loading."""
        state = {key: getattr(self, key) for key in _STATE_KEYS if key != "recipe"}
        state["recipe"] = self.recipe.to_dict()
        state["base_lrs"] = list(self.base_lrs)
        state["_last_lr"] = list(self._last_lr)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from `state_dict()` and set the optimizer's lr for the restored step."""
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise ValueError(f"DateScheduler state is missing {missing}; expected {_STATE_KEYS}")
        self.recipe = Recipe.from_dict(state_dict["recipe"])
        self.steps_per_epoch = _check_steps_per_epoch(state_dict["steps_per_epoch"])
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])
        self.base_lrs = list(state_dict["base_lrs"])
        for group, lr in zip(self.optimizer.param_groups, self._lrs(), strict=True):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)  # keep a tensor lr a tensor, as torch's schedulers do
            else:
                group["lr"] = lr
        self._last_lr = [
            group["lr"].clone() if isinstance(group["lr"], Tensor) else group["lr"]
            for group in self.optimizer.param_groups
        ]
