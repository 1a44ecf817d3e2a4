"""JAX / optax: `date.lr_at` as an optax schedule (a pure function of the step count).

optax calls a schedule with the step count as a traced integer inside ``jit``, where Python code
such as `lr_at` cannot branch on it; so the schedule is `lr_at` evaluated once per step of the run
into an array, and indexing that array is the schedule. Needs the library's ``jax`` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from date.recipe import Recipe
from date.schedule import lr_at, total_steps


def schedule(
    recipe: Recipe, steps_per_epoch: float, dtype: Any = jnp.float32
) -> Callable[[Any], Any]:
    """An optax schedule equal to ``lr_at(recipe, step, steps_per_epoch)`` at every step of the run.

    Steps 0 to ``total_steps(recipe, steps_per_epoch)`` are tabulated (in `dtype`); a later step
    gets the value of the last one. Pass it as the learning rate of any optax optimizer, e.g.
    ``optax.sgd(date.optax.schedule(recipe, steps_per_epoch), momentum=0.9)``.
    """
    last = total_steps(recipe, steps_per_epoch)
    table = jnp.asarray([lr_at(recipe, step, steps_per_epoch) for step in range(last + 1)], dtype)

    def learning_rate(count: Any) -> Any:
        return table[jnp.clip(count, 0, last)]

    return learning_rate
