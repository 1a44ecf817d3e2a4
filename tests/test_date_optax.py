"""date.optax with real JAX and optax: the schedule equals date.lr_at, in and out of jit, and the
lr an optax SGD applies at each step of a training loop follows it, also after a resume.

Skipped only when the library's ``jax`` extra is not installed (CI installs it).
"""

import pickle

import pytest

import date

pytest.importorskip("optax", reason="the library's [jax] extra is not installed")
import jax
import jax.numpy as jnp
import numpy as np
import optax

import date.optax

RECIPES = {
    "poly": date.Recipe(batch_size=256, lr=0.1, epochs=6, warmup_epochs=0.5, decay="poly"),
    "multistep": date.Recipe(
        batch_size=256, lr=0.4, epochs=4, warmup_epochs=0.25, decay="multistep", milestones=(2, 3)
    ),
    "exponential": date.Recipe(
        batch_size=128, lr=1.0, epochs=6, decay="exponential", decay_start_epoch=2
    ),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("batch_size", [256, 2048])
def test_schedule_equals_lr_at_at_every_step(name, batch_size):
    recipe = date.scale(RECIPES[name], batch_size)
    steps_per_epoch = 60000 / batch_size  # fractional at 2048
    schedule = date.optax.schedule(recipe, steps_per_epoch)
    last = date.total_steps(recipe, steps_per_epoch)
    steps = jnp.arange(last + 1)
    expected = np.array(
        [date.lr_at(recipe, step, steps_per_epoch) for step in range(last + 1)], np.float32
    )
    np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(schedule))(steps)), expected)
    assert [float(schedule(step)) for step in (0, 1, last // 2)] == [
        float(expected[0]),
        float(expected[1]),
        float(expected[last // 2]),
    ]
    assert float(schedule(last + 100)) == float(expected[-1])  # past the run: the last value


def test_sgd_applies_the_schedule_at_every_step_and_after_resume():
    # DATE at 8 x the base batch 32 on 640 examples: 2.5 steps an epoch, 10 steps in all.
    recipe = date.scale(
        date.Recipe(batch_size=32, lr=0.05, epochs=4, warmup_epochs=0.125, decay="cosine"), 256
    )
    steps_per_epoch = 640 / 256
    optimizer = optax.sgd(date.optax.schedule(recipe, steps_per_epoch))
    key = jax.random.PRNGKey(0)
    inputs = jax.random.normal(key, (256, 3))
    targets = inputs @ jnp.array([1.0, -2.0, 0.5])

    def loss(weights):
        return jnp.mean((inputs @ weights - targets) ** 2)

    @jax.jit
    def train_step(weights, state):
        gradient = jax.grad(loss)(weights)
        updates, state = optimizer.update(gradient, state, weights)
        return optax.apply_updates(weights, updates), state, updates, gradient

    def run(weights, state, steps):
        applied = []
        for _ in range(steps):
            weights, state, updates, gradient = train_step(weights, state)
            applied.append(float(-updates[0] / gradient[0]))  # SGD: update = -lr * gradient
        return weights, state, applied

    weights = jnp.zeros(3)
    weights, state, first = run(weights, optimizer.init(weights), 4)
    saved = pickle.dumps(jax.tree_util.tree_map(np.asarray, (weights, state)))
    weights, state = pickle.loads(saved)  # a resume from plain arrays
    _, _, rest = run(weights, state, 6)
    expected = [date.lr_at(recipe, step, steps_per_epoch) for step in range(10)]
    assert expected[0] == 0.0 and max(expected) > 0.1
    assert first + rest == pytest.approx(expected, rel=1e-5, abs=1e-9)
