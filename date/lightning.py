"""PyTorch Lightning: `configure_optimizers` with DATE, stepped once per optimizer step.

Lightning steps a scheduler whose config says ``"interval": "step"`` after every optimizer step
(after gradient accumulation), saves its ``state_dict()`` in checkpoints and loads it on resume
(`DateScheduler.load_state_dict` re-applies the lr of the restored step). Needs the library's
``lightning`` extra; this module imports nothing from Lightning itself.
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer

from date.batch import scale_to_setup
from date.optim import build_optimizer
from date.recipe import Recipe
from date.scheduler import DateScheduler


def scheduler_config(
    optimizer: Optimizer, recipe: Recipe, steps_per_epoch: float
) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry: a `DateScheduler` stepped every optimizer step."""
    return {
        "scheduler": DateScheduler(optimizer, recipe, steps_per_epoch),
        "interval": "step",
        "frequency": 1,
        "name": "date",
    }


def configure_optimizers(
    module: Any,
    base: Recipe,
    *,
    per_device_batch: int,
    dataset_size: int,
    method: str = "date",
) -> dict[str, Any]:
    """The return value of ``LightningModule.configure_optimizers`` for `base` scaled to the run.

    The global batch is `per_device_batch` x the trainer's ``accumulate_grad_batches`` x its
    ``world_size`` (`date.scale_to_setup`); the optimizer is `date.build_optimizer` over `module`
    and the schedule has ``dataset_size / global batch`` steps per epoch. Call it from
    ``configure_optimizers(self)`` as ``return date.lightning.configure_optimizers(self, ...)``.
    """
    trainer = module.trainer
    recipe = scale_to_setup(
        base,
        per_device_batch=per_device_batch,
        accumulation_steps=trainer.accumulate_grad_batches,
        world_size=trainer.world_size,
        method=method,
    )
    optimizer = build_optimizer(module, recipe)
    steps_per_epoch = dataset_size / recipe.batch_size
    return {
        "optimizer": optimizer,
        "lr_scheduler": scheduler_config(optimizer, recipe, steps_per_epoch),
    }
