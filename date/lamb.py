"""`BiasCorrectedLamb`: LAMB as published, over pytorch_optimizer's Lamb (optional extra ``lars``).

Importing this module imports pytorch_optimizer; `date.build_optimizer` loads it only for
``optimizer="lamb"``, so the library itself needs nothing but torch.
"""

from __future__ import annotations

from typing import Any

import torch

from date.extras import LARS_EXTRA_HINT

try:
    from pytorch_optimizer import Lamb
except ImportError as error:
    raise ImportError(
        f"date.BiasCorrectedLamb needs pytorch-optimizer, which is not installed: {LARS_EXTRA_HINT}"
    ) from error


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
