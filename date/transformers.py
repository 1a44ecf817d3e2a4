"""Hugging Face `transformers.Trainer`: an optimizer and `DateScheduler` pair for ``optimizers=``.

The Trainer steps the scheduler once per optimizer step, that is once per
``gradient_accumulation_steps`` batches, and saves and restores its ``state_dict()`` with
checkpoints (``torch.load(..., weights_only=True)``, which `DateScheduler`'s plain state allows).
The global batch is ``args.train_batch_size`` (per-device batch x GPUs of the process) x
``args.gradient_accumulation_steps`` x ``args.world_size``. Needs the ``transformers`` extra;
this module imports nothing from transformers itself.
"""

from __future__ import annotations

from typing import Any

import torch

from date.batch import global_batch_size, scale_to_setup
from date.optim import build_optimizer
from date.recipe import Recipe
from date.scheduler import DateScheduler


def trainer_global_batch(args: Any) -> int:
    """Examples per optimizer step of a Trainer run with these ``TrainingArguments``."""
    return global_batch_size(
        args.train_batch_size, args.gradient_accumulation_steps, args.world_size
    )


def optimizers(
    model: torch.nn.Module,
    base: Recipe,
    args: Any,
    *,
    dataset_size: int,
    method: str = "date",
) -> tuple[torch.optim.Optimizer, DateScheduler]:
    """``(optimizer, scheduler)`` for ``Trainer(..., optimizers=...)``: `base` scaled to the run.

    The recipe is `base` scaled by `method` to `trainer_global_batch(args)`, the optimizer is
    `date.build_optimizer(model, recipe)`, and the schedule has ``dataset_size / global batch``
    steps per epoch. Give the Trainer ``max_steps=date.total_steps(recipe, steps_per_epoch)`` (or
    ``num_train_epochs=recipe.epochs``) so that it trains the recipe's budget.
    """
    recipe = scale_to_setup(
        base,
        per_device_batch=args.train_batch_size,
        accumulation_steps=args.gradient_accumulation_steps,
        world_size=args.world_size,
        method=method,
    )
    optimizer = build_optimizer(model, recipe)
    return optimizer, DateScheduler(optimizer, recipe, dataset_size / recipe.batch_size)
