"""Benchmark: evaluating date.lr_at over 1e5 steps (run with `pytest benchmarks`)."""

from date import Recipe, lr_at, scale, total_steps

STEPS = 100_000


def test_lr_at_over_1e5_steps(benchmark):
    # ImageNet-style DATE recipe at 32K with poly decay; 1281167 / 32768 steps per epoch, swept
    # past the end of the budget (3518 steps) so every branch of the schedule is exercised.
    base = Recipe(batch_size=256, lr=0.1, epochs=90, warmup_epochs=0.3125, decay="poly")
    recipe = scale(base, 32768)
    steps_per_epoch = 1281167 / 32768

    def sweep():
        return [lr_at(recipe, step, steps_per_epoch) for step in range(STEPS)]

    lrs = benchmark(sweep)
    assert len(lrs) == STEPS
    assert 0.999 * recipe.lr < max(lrs) <= recipe.lr
    assert lrs[total_steps(recipe, steps_per_epoch) + 1] == 0.0
