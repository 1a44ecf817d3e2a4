"""Every configuration key of an experiment with a declared type and valid range.

Each experiment declares a ``ConfigSchema`` for its ``model.KEY`` and ``data.KEY`` settings, with
rules that tie keys together (a slice's start below its stop, say) and an estimate of the
activation memory of a micro-batch; the recipe fields (``RECIPE_FIELDS``) and the ``run.KEY``
settings (``RUN_FIELDS``) are shared. ``config_check.py`` checks a sweep's whole configuration,
the preset's values and the user's ``--set`` alike, before anything is trained or written, and a
value out of range is a one-line usage error that names the key, the range and why.

A range says what the code can run and what the key means, with its reason or source in ``why``;
it is not a judgement of what trains well (a huge learning rate is valid, and its run is recorded
as diverged).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from date.recipe import DECAYS, OPTIMIZERS


@dataclass(frozen=True)
class Field:
    """The declared type and range of one key.

    ``kind`` is bool, int, float or str; with ``sequence`` the value is a tuple of ``kind``
    (``length`` items when set). Numbers lie in [``low``, ``high``] (an end excluded with
    ``low_open`` / ``high_open``; None: unbounded; every number must be finite); a str, where
    ``choices`` are given, is one of them. ``optional`` allows None. ``why`` gives the reason or
    source of the range.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    optional: bool = False
    sequence: bool = False
    length: int | None = None
    why: str = ""

    def describe(self) -> str:
        """The valid values in words: "an integer >= 1", "a number in (0, 1]"."""
        if self.choices:
            text = "one of " + ", ".join(str(choice) for choice in self.choices)
        elif self.kind is bool:
            text = "true or false"
        elif self.kind is str:
            text = "text"
        else:
            noun = "an integer" if self.kind is int else "a finite number"
            text = noun + self._range()
        if self.sequence:
            count = f"{self.length} " if self.length else ""
            text = f"a comma-separated list of {count}values, each {text}"
        return text + (" (or none)" if self.optional else "")

    def _range(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f" in {left}{low:g}, {high:g}{right}"
        if low is not None:
            return f" {'>' if self.low_open else '>='} {low:g}"
        if high is not None:
            return f" {'<' if self.high_open else '<='} {high:g}"
        return ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid, or None."""
        if value is None:
            return None if self.optional else "none is not allowed"
        if self.sequence:
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
                return "not a list"
            if self.length is not None and len(value) != self.length:
                return f"{len(value)} values, not {self.length}"
            for item in value:
                problem = self._item_problem(item)
                if problem:
                    return problem
            return None
        return self._item_problem(value)

    def _item_problem(self, value: Any) -> str | None:
        if self.kind is bool:
            return None if isinstance(value, bool) else "not true or false"
        if self.kind is str:
            if not isinstance(value, str):
                return "not text"
            if self.choices and value not in self.choices:
                return "not a valid choice"
            if "\x00" in value:
                return "holds a NUL character"
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "not a number"
        if self.kind is int and not (isinstance(value, numbers.Integral) or value == int(value)):
            return "not a whole number"
        number = float(value)
        if not math.isfinite(number):
            return "not finite"
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return "out of range"
        if self.high is not None and (
            number > self.high or (self.high_open and number == self.high)
        ):
            return "out of range"
        return None


@dataclass(frozen=True)
class ConfigView:
    """What a cross-key rule sees: the resolved configuration of a sweep."""

    recipe: Any  # date.Recipe (the base recipe, the user's overrides applied)
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    source: str
    data_dir: Path | None
    #: The keys the user set with --set, namespaced (``lr``, ``model.hidden_size``, ...).
    user_keys: frozenset[str] = frozenset()


#: A rule over several keys: the problem as one line (naming the keys), or None.
Rule = Callable[[ConfigView], str | None]
#: Activation memory of one micro-batch, in bytes: (model config, data config, micro-batch).
ActivationEstimate = Callable[[Mapping[str, Any], Mapping[str, Any], int], float]


@dataclass(frozen=True)
class ConfigSchema:
    """An experiment's ``model.KEY`` and ``data.KEY`` fields, its cross-key rules and its
    activation-memory estimate (a lower bound: what the backward pass must keep at least)."""

    model: Mapping[str, Field] = field(default_factory=dict)
    data: Mapping[str, Field] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    activation_bytes: ActivationEstimate | None = None


def count(low: int = 1, high: int | None = None, why: str = "") -> Field:
    """A whole number in [low, high]."""
    return Field(int, low=low, high=high, why=why)


def fraction(why: str = "", closed_high: bool = False) -> Field:
    """A number in [0, 1) ([0, 1] with ``closed_high``)."""
    return Field(float, low=0.0, high=1.0, high_open=not closed_high, why=why)


#: The recipe fields (``--set FIELD=VALUE``): the ranges ``date.Recipe`` enforces, and lr > 0,
#: since a run at lr 0 trains nothing (date.Recipe allows 0 for other uses of the library).
RECIPE_FIELDS: dict[str, Field] = {
    "batch_size": count(why="the base batch: a number of examples"),
    "lr": Field(float, low=0.0, low_open=True, why="lr 0 trains nothing"),
    "epochs": Field(float, low=0.0, low_open=True, why="an epoch budget"),
    "warmup_epochs": Field(float, low=0.0, why="at most the epoch budget (date.Recipe)"),
    "warmup_start_factor": fraction("a fraction of the peak lr", closed_high=True),
    "decay": Field(str, choices=DECAYS, why="date.schedule's decays"),
    "poly_power": Field(float, low=0.0, low_open=True, why="an exponent of the decay"),
    "final_lr_factor": fraction("a fraction of the peak lr", closed_high=True),
    "decay_rate": Field(float, low=0.0, high=1.0, low_open=True, why="a factor per epoch"),
    "decay_start_epoch": Field(float, low=0.0, why="within the epoch budget (date.Recipe)"),
    "staircase": Field(bool),
    "milestones": Field(
        float, low=0.0, low_open=True, sequence=True, why="epochs within the budget"
    ),
    "milestone_factor": Field(float, low=0.0, high=1.0, low_open=True, why="a factor"),
    "optimizer": Field(str, choices=OPTIMIZERS, why="date.build_optimizer's optimizers"),
    "momentum": fraction("heavy-ball momentum (sgd, lars only)"),
    "nesterov": Field(bool),
    "weight_decay": Field(float, low=0.0, why="an L2 coefficient"),
    "betas": Field(
        float,
        low=0.0,
        high=1.0,
        high_open=True,
        sequence=True,
        length=2,
        why="Adam's moment decay rates (Kingma and Ba 2015)",
    ),
    "eps": Field(float, low=0.0, low_open=True, why="Adam's denominator term"),
    "trust_coefficient": Field(float, low=0.0, low_open=True, why="LARS's eta"),
    "grad_clip_norm": Field(float, low=0.0, low_open=True, optional=True, why="a norm"),
}

#: ``--set run.KEY`` (sweep.RunSettings): how a run is executed, not what it trains.
RUN_FIELDS: dict[str, Field] = {
    "micro_batch_size": Field(
        int, low=1, optional=True, why="at most the smallest per-device batch of the sweep"
    ),
    "measure_micro_batch": Field(bool),
    "measure_noise": Field(bool),
    "evals_per_epoch": Field(float, low=0.0, low_open=True, optional=True),
    "precision": Field(str, choices=("fp32", "bf16")),
    "checkpoint_every_epochs": Field(float, low=0.0, low_open=True, optional=True),
    "checkpoint_every_minutes": Field(float, low=0.0, optional=True, why="0 or none: never"),
}
