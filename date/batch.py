"""The global batch of a training setup, and the DATE recipe for it.

With data parallelism over `world_size` processes, each accumulating `accumulation_steps`
micro-batches of `per_device_batch` examples before one optimizer step, that step averages the
gradient over ``per_device_batch * accumulation_steps * world_size`` examples: this product is the
batch B of the paper's rules (k = B / B0), not the per-device batch (Goyal et al. 2017 write n
examples per worker and a total minibatch of kn over k workers).
"""

from __future__ import annotations

from date.recipe import Recipe, check_batch_size
from date.scaling import scale


def global_batch_size(
    per_device_batch: int, accumulation_steps: int = 1, world_size: int = 1
) -> int:
    """Examples per optimizer step: ``per_device_batch * accumulation_steps * world_size``.

    Raises ValueError naming the argument unless each is a positive integer.
    """
    return (
        check_batch_size(per_device_batch, name="per_device_batch")
        * check_batch_size(accumulation_steps, name="accumulation_steps")
        * check_batch_size(world_size, name="world_size")
    )


def scale_to_setup(
    recipe: Recipe,
    *,
    per_device_batch: int,
    accumulation_steps: int = 1,
    world_size: int = 1,
    method: str = "date",
) -> Recipe:
    """`recipe` (tuned at `recipe.batch_size`) scaled by `method` to the setup's global batch.

    The same as ``date.scale(recipe, global_batch_size(...), method)``; the result's
    `batch_size` is the global batch and ``k = result.batch_size / recipe.batch_size``.
    """
    batch = global_batch_size(per_device_batch, accumulation_steps, world_size)
    return scale(recipe, batch, method)
