"""Rules that derive a recipe for batch size B from one tuned at the base batch B0 (k = B / B0).

Each rule changes only the peak learning rate and the warmup length; the epoch budget and everything
else stay as tuned. The baselines are the ones the paper compares DATE against (paper-facts.md).
"""

from __future__ import annotations

import math

from date.recipe import Recipe, check_batch_size

#: Scaling rules, in the order of the paper's baselines followed by DATE itself.
METHODS: tuple[str, ...] = ("none", "linear", "linear-nowarmup", "sqrt", "sqrt-nowarmup", "date")

#: Other accepted names: the arXiv 1901.08256 / tech-report name of DATE is LEGW
#: (linear-epoch gradual warmup).
ALIASES: dict[str, str] = {"legw": "date"}

# method -> (lr multiplier as a function of k, warmup-epochs multiplier as a function of k)
_RULES = {
    # No scaling: the paper's baseline that reuses the base recipe unchanged at the larger batch.
    "none": (lambda k: 1.0, lambda k: 1.0),
    # Goyal et al. 2017, "Accurate, Large Minibatch SGD": lr * k, warmup constant in epochs.
    "linear": (lambda k: k, lambda k: 1.0),
    "linear-nowarmup": (lambda k: k, lambda k: 0.0),
    # Krizhevsky 2014 "One weird trick"; Hoffer et al. 2017: lr * sqrt(k), same warmup epochs.
    "sqrt": (math.sqrt, lambda k: 1.0),
    "sqrt-nowarmup": (math.sqrt, lambda k: 0.0),
    # You et al. SC'19 (DATE) / arXiv 1901.08256 (LEGW): lr * sqrt(k), warmup epochs * k.
    "date": (math.sqrt, lambda k: k),
}

# Relative slack when comparing a scaled warmup with the epoch budget, so that a warmup equal to the
# budget up to float rounding (e.g. 0.3125 * 128 = 40 of 40 epochs) is not rejected.
_RELATIVE_TOLERANCE = 1e-12


def canonical_method(name: str) -> str:
    """Return the canonical name of scaling method `name` (resolving `ALIASES`).

    Raises ValueError listing `METHODS` and the aliases when the name is unknown.
    """
    if isinstance(name, str):
        lowered = name.strip().lower()
        if lowered in METHODS:
            return lowered
        if lowered in ALIASES:
            return ALIASES[lowered]
    aliases = ", ".join(f"{alias!r} (= {target!r})" for alias, target in ALIASES.items())
    raise ValueError(
        f"method must be one of {', '.join(repr(m) for m in METHODS)} or an alias {aliases}; "
        f"got {name!r}"
    )


def scale(recipe: Recipe, batch_size: int, method: str = "date") -> Recipe:
    """Return `recipe` (tuned at `recipe.batch_size`) scaled to `batch_size` by `method`.

    With k = batch_size / recipe.batch_size (a float; k < 1 scales down):

    - ``none``: same lr, same warmup epochs (the paper's "no scaling" baseline).
    - ``linear``: lr * k, warmup epochs unchanged (Goyal et al. 2017, linear scaling with gradual
      warmup). Goyal's warmup starts at the base lr, i.e. ``warmup_start_factor = 1 / k``; users can
      set that, but the recipe's start factor is kept so that only the scaling rule differs.
    - ``linear-nowarmup``: lr * k, no warmup.
    - ``sqrt``: lr * sqrt(k), warmup epochs unchanged (Krizhevsky 2014 "One weird trick";
      Hoffer et al. 2017).
    - ``sqrt-nowarmup``: lr * sqrt(k), no warmup.
    - ``date`` (alias ``legw``): lr * sqrt(k) and warmup epochs * k, so the warmup lasts the same
      number of steps at every batch size (You et al. SC'19; arXiv 1901.08256 "linear-epoch gradual
      warmup"; the k-times-epochs rule also in petuum/adaptdl ``LEGWScale``).

    Only `batch_size`, `lr` and `warmup_epochs` change; the epoch budget and decay stay as tuned.
    Raises ValueError for an unknown method, a batch size that is not a positive integer, or a
    scaled warmup longer than the epoch budget.
    """
    canonical = canonical_method(method)
    batch_size = check_batch_size(batch_size)
    k = batch_size / recipe.batch_size
    lr_rule, warmup_rule = _RULES[canonical]
    warmup_epochs = recipe.warmup_epochs * warmup_rule(k)
    if warmup_epochs > recipe.epochs * (1.0 + _RELATIVE_TOLERANCE):
        raise ValueError(
            f"method {canonical!r} at batch_size={batch_size} (k={k:g} x base "
            f"{recipe.batch_size}) gives warmup_epochs={warmup_epochs:g} > "
            f"epochs={recipe.epochs:g}; lower warmup_epochs at the base batch or use fewer "
            "scaling steps"
        )
    return recipe.replace(
        batch_size=batch_size,
        lr=recipe.lr * lr_rule(k),
        warmup_epochs=min(warmup_epochs, recipe.epochs),
    )
