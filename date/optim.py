"""Build the optimizer a recipe names, with the usual large-batch parameter groups.

Parameters with at most one dimension (biases, normalization weights) get no weight decay (Goyal et
al. 2017, section 5.1, for the BN coefficients; Jia et al. 2018, "no bias decay", for biases) and no
layer-wise trust ratio under LARS/LAMB (pytorch_optimizer's LARS skips ndim <= 1 by itself; the
LAMB reference in TensorFlow Addons has `exclude_from_layer_adaptation` for this). SGD, Adam, AdamW
and Adagrad come from torch.optim; LARS from pytorch_optimizer; LAMB from `BiasCorrectedLamb`, a
thin subclass of pytorch_optimizer's Lamb that follows the published algorithm (see its docstring).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from pytorch_optimizer import LARS, Lamb

from date.recipe import OPTIMIZERS, Recipe

#: Param-group names set by `build_optimizer` (key "name" in each group).
WEIGHTS_GROUP = "weights"
NO_WEIGHT_DECAY_GROUP = "no_weight_decay"


class BiasCorrectedLamb(Lamb):
    """LAMB as in Algorithm 2 of You et al. 2020 (ICLR; arXiv 1904.00962 v5), with bias correction.

    For each parameter x with gradient g, at step t (1-based, counted per param group)::

        m = beta1 m + (1 - beta1) g;       v = beta2 v + (1 - beta2) g^2
        r = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * x
        x = x - lr * phi(||x||) / ||r|| * r,      phi(z) = min(z, 10)

    with the ratio taken as 1 when ||x|| or ||r|| is 0, and for param groups with ``adam=True``
    (pytorch_optimizer's per-group flag for "trust ratio 1"; `build_optimizer` sets it for
    parameters with ndim <= 1). The upper bound 10 of phi is pytorch_optimizer's ``Lamb.clamp``.

    Why not pytorch_optimizer 4.1.0's Lamb itself: its step divides the learning rate by
    ``1 - beta1^t`` but never corrects v, so with the trust ratio its first step is ``lr / (1 -
    beta1)`` = 10x the paper's ``lr * ||x||`` (decaying over ~50 steps), and without the trust ratio
    its step is up to ``1 / sqrt(1 - beta2^t)`` (31.6x at t = 1) larger than Adam's. Its ``eps`` is
    also added to the trust-ratio denominator, which the paper does not do. tests/test_date_optim.py
    checks this class against the formula by hand and pins the library behaviour it replaces.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
            weight_decouple=False,
            eps=eps,
            foreach=False,
        )

    def __str__(self) -> str:
        return "BiasCorrectedLamb"

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Take one LAMB step (Algorithm 2 of You et al. 2020) for every parameter with a grad."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self.init_group(group)  # creates state["exp_avg"], state["exp_avg_sq"], group["step"]
            group["step"] += 1
            beta1, beta2 = group["betas"]
            correction1 = 1.0 - beta1 ** group["step"]
            correction2 = 1.0 - beta2 ** group["step"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                gradient = parameter.grad
                state = self.state[parameter]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(gradient, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(gradient, gradient, value=1.0 - beta2)
                update = (exp_avg / correction1) / (exp_avg_sq / correction2).sqrt().add_(
                    group["eps"]
                )
                if group["weight_decay"] != 0:
                    update.add_(parameter, alpha=group["weight_decay"])
                if not group.get("adam", False):
                    weight_norm = torch.linalg.vector_norm(parameter).clamp(max=self.clamp)
                    update_norm = torch.linalg.vector_norm(update)
                    ratio = torch.where(
                        (weight_norm > 0) & (update_norm > 0),
                        weight_norm / update_norm,
                        torch.ones_like(weight_norm),
                    )
                    update.mul_(ratio)
                parameter.sub_(update * group["lr"])
        return loss


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


def _lars(groups: list[dict[str, Any]], recipe: Recipe) -> torch.optim.Optimizer:
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
