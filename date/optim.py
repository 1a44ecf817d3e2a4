"""Build the optimizer a recipe names, with the usual large-batch parameter groups.

Parameters with at most one dimension (biases, normalization weights) get no weight decay (Goyal et
al. 2017, section 5.1, for the BN coefficients; Jia et al. 2018, "no bias decay", for biases) and no
layer-wise trust ratio under LARS/LAMB (pytorch_optimizer's LARS skips ndim <= 1 by itself; the
LAMB reference in TensorFlow Addons has `exclude_from_layer_adaptation` for this). SGD, Adam, AdamW
and Adagrad come from torch.optim; LARS from pytorch_optimizer; LAMB from `BiasCorrectedLamb`
(`date.lamb`), a thin subclass of pytorch_optimizer's Lamb that follows the published algorithm.
pytorch_optimizer is the library's optional extra ``lars``: it is imported only when a recipe asks
for LARS or LAMB.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from date.extras import LARS_EXTRA_HINT
from date.recipe import OPTIMIZERS, Recipe

#: Param-group names set by `build_optimizer` (key "name" in each group).
WEIGHTS_GROUP = "weights"
NO_WEIGHT_DECAY_GROUP = "no_weight_decay"


def _named_parameters(params_or_module: object) -> list[tuple[str, torch.Tensor]]:
    """(name, parameter) pairs from a module, parameters, or named parameters (trainable only)."""
    if isinstance(params_or_module, torch.nn.Module):
        items = list(params_or_module.named_parameters())
    elif isinstance(params_or_module, torch.Tensor) or not isinstance(params_or_module, Iterable):
        raise TypeError(
            "build_optimizer expects an nn.Module, an iterable of parameters or of "
            f"(name, parameter) pairs; got {type(params_or_module).__name__}"
        )
    else:
        items = []
        for index, item in enumerate(params_or_module):
            if isinstance(item, torch.Tensor):
                items.append((f"params[{index}]", item))
            elif (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], torch.Tensor)
            ):
                items.append(item)
            else:
                raise TypeError(
                    "build_optimizer makes its own param groups; pass parameters or "
                    f"(name, parameter) pairs, got {type(item).__name__} at position {index}"
                )
    seen: set[int] = set()
    unique = []
    for name, parameter in items:
        if parameter.requires_grad and id(parameter) not in seen:
            seen.add(id(parameter))
            unique.append((name, parameter))
    if not unique:
        raise ValueError("build_optimizer got no trainable parameters (requires_grad=True)")
    return unique


def _sgd(groups: list[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        groups,
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )


def _adam(groups: list[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        groups, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay
    )


def _adamw(groups: list[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        groups, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay
    )


def _adagrad(groups: list[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(
        groups, lr=recipe.lr, eps=recipe.eps, weight_decay=recipe.weight_decay
    )


def _require_pytorch_optimizer(optimizer: str) -> None:
    try:
        import pytorch_optimizer  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"optimizer {optimizer!r} needs pytorch-optimizer, which is not installed: "
            f"{LARS_EXTRA_HINT}"
        ) from error


def _lars(groups: list[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
    _require_pytorch_optimizer("lars")
    from pytorch_optimizer import LARS

    # pytorch_optimizer's LARS applies the trust ratio and weight decay only to parameters with
    # ndim > 1 (its own rule, no per-group flag), which matches the groups built here.
    return LARS(
        groups,
        lr=recipe.lr,
        momentum=recipe.momentum,
        dampening=0.0,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
        trust_coefficient=recipe.trust_coefficient,
    )


def _lamb(groups: list[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
    _require_pytorch_optimizer("lamb")
    from date.lamb import BiasCorrectedLamb

    return BiasCorrectedLamb(
        groups, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay
    )


_BUILDERS = {
    "sgd": _sgd,
    "adam": _adam,
    "adamw": _adamw,
    "adagrad": _adagrad,
    "lars": _lars,
    "lamb": _lamb,
}


#: What `build_optimizer` accepts: a module, parameters, or (name, parameter) pairs.
Parameters = torch.nn.Module | Iterable[torch.Tensor] | Iterable[tuple[str, torch.Tensor]]


def build_optimizer(params_or_module: Parameters, recipe: Recipe) -> torch.optim.Optimizer:
    """Build `recipe.optimizer` over a module, parameters, or (name, parameter) pairs.

    Two param groups (empty ones are left out): "weights" (ndim > 1) with `recipe.weight_decay`,
    and "no_weight_decay" (ndim <= 1: biases, normalization weights) with weight decay 0 and, for
    LARS and LAMB, no layer-wise trust ratio (LARS: pytorch_optimizer skips ndim <= 1 by itself;
    LAMB: the group has ``adam=True``). The lr given is `recipe.lr`; `DateScheduler` sets the lr of
    every step. SGD (and LARS) momentum and Nesterov follow torch.optim.SGD: ``buf = momentum * buf
    + g``, step ``lr * buf`` (or ``lr * (g + momentum * buf)`` with Nesterov). Gradient clipping
    (`recipe.grad_clip_norm`) is the training loop's job.
    """
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be a date.Recipe, got {type(recipe).__name__}")
    builder = _BUILDERS.get(recipe.optimizer)
    if builder is None:
        choices = ", ".join(repr(name) for name in OPTIMIZERS)
        raise ValueError(f"optimizer must be one of {choices}; got {recipe.optimizer!r}")
    named = _named_parameters(params_or_module)
    weights = [parameter for _, parameter in named if parameter.ndim > 1]
    vectors = [parameter for _, parameter in named if parameter.ndim <= 1]
    groups: list[dict[str, Any]] = []
    if weights:
        groups.append(
            {"params": weights, "weight_decay": recipe.weight_decay, "name": WEIGHTS_GROUP}
        )
    if vectors:
        group: dict[str, Any] = {
            "params": vectors,
            "weight_decay": 0.0,
            "name": NO_WEIGHT_DECAY_GROUP,
        }
        if recipe.optimizer == "lamb":
            group["adam"] = True  # trust ratio 1 (pytorch_optimizer Lamb's per-group flag)
        groups.append(group)
    return builder(groups, recipe)
