"""The training recipe tuned once at a base batch size.

DATE / LEGW (You et al., "Large-Batch Training for LSTM and Beyond", SC'19; arXiv 1901.08256)
tunes a single recipe at a base batch B0 (peak learning rate, warmup length in epochs, epoch budget,
decay) and derives the recipe for any other batch size from it without re-tuning (`date.scaling`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

#: Learning-rate decays applied after warmup (the paper reportedly tried exponential, polynomial
#: and multi-step decay; see the project's paper-facts.md). Formulas: `date.schedule.lr_at`.
DECAYS: tuple[str, ...] = ("constant", "poly", "cosine", "exponential", "multistep")

#: Optimizers `date.build_optimizer` can build (the paper's baselines include SGD, Adam, AdaGrad and
#: LARS; LAMB is the same authors' later layer-wise adaptive optimizer).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw", "adagrad", "lars", "lamb")

#: Optimizers that use the `momentum` and `nesterov` fields (heavy-ball SGD and LARS, which is SGD
#: with a layer-wise trust ratio, You, Gitman and Ginsburg 2017, Algorithm 1).
MOMENTUM_OPTIMIZERS: tuple[str, ...] = ("sgd", "lars")


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_float(name: str, value: object) -> float:
    """Return `value` as a float, or raise ValueError naming the field (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(repr(value) for value in values)


def check_batch_size(batch_size: object, name: str = "batch_size") -> int:
    """Return `batch_size` as an int, or raise ValueError unless it is a positive integer.

    Bools are rejected even though Python treats them as integers (True would mean batch 1).
    """
    if not _is_integer(batch_size) or int(batch_size) <= 0:  # type: ignore[call-overload]
        raise ValueError(f"{name} must be a positive integer, got {batch_size!r}")
    return int(batch_size)  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """A training recipe: batch size, learning-rate schedule and optimizer settings.

    Epoch-valued fields (`epochs`, `warmup_epochs`, `decay_start_epoch`, `milestones`) are in epochs
    of the training set, as in the paper, so they do not depend on the batch size. The learning rate
    at each step is `date.schedule.lr_at`. Every field is validated on construction (also by
    `replace`), and a ValueError names the offending field.
    """

    batch_size: int
    #: Peak learning rate, reached at the end of warmup.
    lr: float
    #: Epoch budget; DATE keeps it fixed across batch sizes (fewer steps at larger batches).
    epochs: float
    #: Gradual warmup length in epochs (Goyal et al. 2017); DATE multiplies it by k = B / B0.
    warmup_epochs: float = 0.0
    #: Learning rate at the start of warmup as a fraction of the peak. 0 is "ramp from 0" (the
    #: paper-facts default, start value unconfirmed); Goyal et al. 2017 start at lr0, i.e. 1/k.
    warmup_start_factor: float = 0.0
    decay: str = "constant"
    #: Exponent of the polynomial decay (power 2 in the LARS ImageNet recipe of the authors' lab).
    poly_power: float = 2.0
    #: Where poly and cosine decay end, as a fraction of the peak learning rate.
    final_lr_factor: float = 0.0
    #: Exponential decay: multiply the learning rate by `decay_rate` per epoch after
    #: `decay_start_epoch` (Zaremba et al. 2014 PTB: 0.5 after epoch 4 for "small", 1/1.15 after 14
    #: for "large").
    decay_rate: float = 0.5
    decay_start_epoch: float = 0.0
    #: Exponential decay in whole-epoch steps (floored exponent), as in Zaremba's training loop.
    staircase: bool = True
    #: Multi-step decay: epochs at which the learning rate is multiplied by `milestone_factor`
    #: (Goyal et al. 2017: 0.1 at epochs 30, 60, 80 for ImageNet).
    milestones: tuple[float, ...] = ()
    milestone_factor: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    #: Adam-family moment decay rates (Kingma and Ba 2015 defaults).
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    #: LARS trust coefficient eta (You, Gitman and Ginsburg 2017, default 0.001).
    trust_coefficient: float = 0.001
    #: Clip the global gradient norm to this value in the training loop (None: no clipping).
    #: `date` does not clip; pass it to torch.nn.utils.clip_grad_norm_ before optimizer.step().
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        set_field = object.__setattr__  # frozen dataclass: normalise values in place
        set_field(self, "batch_size", check_batch_size(self.batch_size))

        floats = {
            field.name: _as_float(field.name, getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.type in ("float", float)
        }
        for name, value in floats.items():
            set_field(self, name, value)

        if self.lr < 0:
            raise ValueError(f"lr must be >= 0, got {self.lr!r}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs!r}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs={self.warmup_epochs:g} exceeds the epoch budget "
                f"epochs={self.epochs:g}"
            )
        for name in ("warmup_start_factor", "final_lr_factor"):
            if not 0.0 <= floats[name] <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {floats[name]!r}")

        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {_choices(DECAYS)}; got {self.decay!r}")
        if self.poly_power <= 0:
            raise ValueError(f"poly_power must be > 0, got {self.poly_power!r}")
        for name in ("decay_rate", "milestone_factor"):
            if not 0.0 < floats[name] <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {floats[name]!r}")
        if not 0.0 <= self.decay_start_epoch <= self.epochs:
            raise ValueError(
                f"decay_start_epoch must be in [0, epochs={self.epochs:g}], "
                f"got {self.decay_start_epoch!r}"
            )
        if not isinstance(self.staircase, bool):
            raise ValueError(f"staircase must be a bool, got {self.staircase!r}")
        set_field(self, "milestones", self._checked_milestones())

        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {_choices(OPTIMIZERS)}; got {self.optimizer!r}"
            )
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be a bool, got {self.nesterov!r}")
        self._check_optimizer_fields()
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        set_field(self, "betas", self._checked_betas())
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        if self.trust_coefficient <= 0:
            raise ValueError(f"trust_coefficient must be > 0, got {self.trust_coefficient!r}")
        if self.grad_clip_norm is not None:
            clip = _as_float("grad_clip_norm", self.grad_clip_norm)
            if clip <= 0:
                raise ValueError(f"grad_clip_norm must be None or > 0, got {clip!r}")
            set_field(self, "grad_clip_norm", clip)

    def _checked_milestones(self) -> tuple[float, ...]:
        if isinstance(self.milestones, (str, bytes)) or not hasattr(self.milestones, "__iter__"):
            raise ValueError(f"milestones must be a sequence of epochs, got {self.milestones!r}")
        milestones = tuple(
            _as_float(f"milestones[{index}]", value) for index, value in enumerate(self.milestones)
        )
        for index, milestone in enumerate(milestones):
            if not 0.0 < milestone <= self.epochs:
                raise ValueError(
                    f"milestones[{index}]={milestone:g} is outside the epoch budget "
                    f"(0, epochs={self.epochs:g}]"
                )
            if index and milestone <= milestones[index - 1]:
                raise ValueError(f"milestones must be strictly increasing, got {milestones}")
        return milestones

    def _checked_betas(self) -> tuple[float, float]:
        betas = tuple(self.betas) if hasattr(self.betas, "__iter__") else (self.betas,)
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers (beta1, beta2), got {self.betas!r}")
        checked = (_as_float("betas[0]", betas[0]), _as_float("betas[1]", betas[1]))
        for index, beta in enumerate(checked):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"betas[{index}] must be in [0, 1), got {beta!r}")
        return checked

    def _check_optimizer_fields(self) -> None:
        """Reject momentum settings the chosen optimizer would silently ignore or refuse.

        Nesterov momentum needs a nonzero momentum (Sutskever et al. 2013; torch.optim.SGD refuses
        it too); Adam-family optimizers and Adagrad have no heavy-ball momentum (they use `betas`).
        """
        uses_momentum = self.optimizer in MOMENTUM_OPTIMIZERS
        if self.momentum > 0 and not uses_momentum:
            raise ValueError(
                f"momentum={self.momentum:g} is not used by optimizer {self.optimizer!r} (only "
                f"by {_choices(MOMENTUM_OPTIMIZERS)}); set momentum=0 (adam-style optimizers use "
                "betas)"
            )
        if self.nesterov and not uses_momentum:
            raise ValueError(
                f"nesterov=True is not supported by optimizer {self.optimizer!r} "
                f"(only by {_choices(MOMENTUM_OPTIMIZERS)})"
            )
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True requires momentum > 0, got momentum=0")

    def to_dict(self) -> dict[str, Any]:
        """Return the recipe as a JSON-safe dict (tuples become lists); inverse of `from_dict`."""
        result: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            result[field.name] = list(value) if isinstance(value, tuple) else value
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build a recipe from `to_dict` output; unknown or missing keys raise ValueError."""
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown Recipe fields {unknown}; valid fields are {names}")
        required = [
            field.name
            for field in dataclasses.fields(cls)
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"missing required Recipe fields {missing}")
        return cls(**data)

    def replace(self, **changes: Any) -> Recipe:
        """Return a copy with `changes` applied (validated again, like `dataclasses.replace`)."""
        names = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown Recipe fields {unknown}; valid fields are {sorted(names)}")
        return dataclasses.replace(self, **changes)
