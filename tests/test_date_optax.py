"""date.optax with real JAX and optax: the schedule equals date.lr_at, in and out of jit, and the
lr an optax SGD applies at each step of a training loop follows it, also after a resume.

Skipped only when the library's ``jax`` extra is not installed (CI installs it). The JAX work runs
in a fresh interpreter (one spawned worker for the module): once XLA has run a computation, the
process carries XLA's threads, and the suite's launcher tests that later start and SIGKILL job
processes from the same pytest process then fail (seen: pytest's captured stderr closed under
them). Checks raise AssertionError with their values, which the worker sends back.
"""

import concurrent.futures
import importlib.util
import multiprocessing
import pickle

import pytest

import date

if importlib.util.find_spec("jax") is None or importlib.util.find_spec("optax") is None:
    pytest.skip("the library's [jax] extra is not installed", allow_module_level=True)

RECIPES = {
    "poly": date.Recipe(batch_size=256, lr=0.1, epochs=6, warmup_epochs=0.5, decay="poly"),
    "multistep": date.Recipe(
        batch_size=256, lr=0.4, epochs=4, warmup_epochs=0.25, decay="multistep", milestones=(2, 3)
    ),
    "exponential": date.Recipe(
        batch_size=128, lr=1.0, epochs=6, decay="exponential", decay_start_epoch=2
    ),
}


@pytest.fixture(scope="module")
def jax_worker():
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        yield pool


def schedule_matches_lr_at(name, batch_size):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import date.optax

    recipe = date.scale(RECIPES[name], batch_size)
    steps_per_epoch = 60000 / batch_size  # fractional at 2048
    schedule = date.optax.schedule(recipe, steps_per_epoch)
    last = date.total_steps(recipe, steps_per_epoch)
    expected = np.array(
        [date.lr_at(recipe, step, steps_per_epoch) for step in range(last + 1)], np.float32
    )
    jitted = np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(last + 1)))
    np.testing.assert_array_equal(jitted, expected)
    for step in (0, 1, last // 2):
        assert float(schedule(step)) == float(expected[step]), (step, float(schedule(step)))
    assert float(schedule(last + 100)) == float(expected[-1])  # past the run: the last value
    return last


def sgd_applied_lrs():
    """Train least squares with optax.sgd(schedule) 4 steps, save, reload, train 6 more; return
    the recipe and the lr applied at each step (SGD: update = -lr * gradient)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import date.optax

    # DATE at 8 x the base batch 32 on 640 examples: 2.5 steps an epoch, 10 steps in all.
    base = date.Recipe(batch_size=32, lr=0.05, epochs=4, warmup_epochs=0.125, decay="cosine")
    recipe = date.scale(base, 256)
    optimizer = optax.sgd(date.optax.schedule(recipe, 640 / 256))
    inputs = jax.random.normal(jax.random.PRNGKey(0), (256, 3))
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
            applied.append(float(-updates[0] / gradient[0]))
        return weights, state, applied

    weights = jnp.zeros(3)
    weights, state, first = run(weights, optimizer.init(weights), 4)
    saved = pickle.dumps(jax.tree_util.tree_map(np.asarray, (weights, state)))
    weights, state = pickle.loads(saved)  # a resume from plain arrays
    _, _, rest = run(weights, state, 6)
    return recipe, first + rest


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("batch_size", [256, 2048])
def test_schedule_equals_lr_at_at_every_step(jax_worker, name, batch_size):
    last = jax_worker.submit(schedule_matches_lr_at, name, batch_size).result(timeout=300)
    assert last == date.total_steps(date.scale(RECIPES[name], batch_size), 60000 / batch_size)


def test_sgd_applies_the_schedule_at_every_step_and_after_resume(jax_worker):
    recipe, applied = jax_worker.submit(sgd_applied_lrs).result(timeout=300)
    expected = [date.lr_at(recipe, step, 640 / 256) for step in range(10)]
    assert expected[0] == 0.0 and max(expected) > 0.1
    assert applied == pytest.approx(expected, rel=1e-5, abs=1e-9)
