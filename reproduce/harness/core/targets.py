"""Reference numbers a reproduction is diffed against, each with its source and status.

A `Target` is one number (a metric value, optionally at one batch size) taken from somewhere
outside the run records: the paper's tables or abstract, an external reference run of the same
model, or the suite's own baseline. A `Claim` is a statement of the paper that the suite checks
against its own base-batch runs instead of against a number, e.g. the abstract's "LSTM batch
scaled x64 without losing accuracy" (arXiv 1901.08256 and UCB/EECS-2018-138 abstracts).

Rules (see /work/shared/reference/paper-facts.md):
- the direction of a metric (`mode`) is always written down, never guessed from its name;
- every number carries its `source` and a `status`; a number that nobody has checked against its
  source is "unverified" and is shown but never judged;
- an unknown value is `None`, never a number filled in from memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

MODES = ("min", "max")

TARGET_STATUSES = (
    "paper table",
    "paper abstract",
    "external reference",
    "suite baseline",
    "unverified",
)


def _check_mode(mode: object) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _check_status(status: object) -> None:
    if status not in TARGET_STATUSES:
        raise ValueError(f"status must be one of {TARGET_STATUSES}, got {status!r}")


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def meets(value: float, target: float, mode: str, tolerance: float = 0.0) -> bool:
    """True when `value` is at least as good as `target` minus `tolerance` in direction `mode`.

    mode "max": value >= target - tolerance; mode "min": value <= target + tolerance.
    """
    _check_mode(mode)
    if mode == "max":
        return value >= target - tolerance
    return value <= target + tolerance


def _from_mapping(cls: type, data: Mapping[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}")
    return cls(**dict(data))


@dataclass(frozen=True)
class Target:
    """One reference value of a metric.

    metric: name of the metric as it appears in a record's "final" dict (e.g. "perplexity").
    value: the reference value, or None when it is not known (e.g. a paper table not yet
        transcribed from the PDF).
    mode: "max" if higher is better, "min" if lower is better. Required: never guessed.
    tolerance: absolute slack allowed around `value` (same units as the metric), >= 0.
    source: where the value comes from (paper section/table, URL, file).
    status: one of TARGET_STATUSES.
    batch_size: the global batch the value applies to; None means the value applies to any batch
        (the report then checks it at the base batch, i.e. on the tuned reference recipe).
    method: the scaling method the value applies to; None means every method run at that batch.
        (An addition to the minimal field list: paper tables report baselines and DATE side by
        side at the same batch, so a table value needs to say which row it came from.)
    note: free text shown next to the value in the report.
    """

    metric: str
    value: float | None
    mode: str
    tolerance: float
    source: str
    status: str
    batch_size: int | None = None
    note: str = ""
    method: str | None = None

    def __post_init__(self) -> None:
        _check_text("metric", self.metric)
        _check_mode(self.mode)
        _check_status(self.status)
        _check_text("source", self.source)
        if self.value is not None and not (_is_real(self.value) and math.isfinite(self.value)):
            raise ValueError(f"value must be a finite number or None, got {self.value!r}")
        if not (_is_real(self.tolerance) and math.isfinite(self.tolerance)) or self.tolerance < 0:
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.tolerance!r}")
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int)
            or isinstance(self.batch_size, bool)
            or self.batch_size <= 0
        ):
            raise ValueError(f"batch_size must be a positive int or None, got {self.batch_size!r}")
        if self.method is not None:
            _check_text("method", self.method)
        if not isinstance(self.note, str):
            raise ValueError(f"note must be a string, got {self.note!r}")

    @property
    def verified(self) -> bool:
        """True when the value is known and its status says someone checked it at its source."""
        return self.status != "unverified" and self.value is not None

    def met(self, value: float) -> bool:
        """True when `value` meets the target within the tolerance.

        max: value >= target - tolerance; min: value <= target + tolerance.
        Raises ValueError when the target value is unknown (None): nothing can meet it.
        """
        if self.value is None:
            raise ValueError(f"target for {self.metric!r} has no value ({self.source})")
        return meets(value, self.value, self.mode, self.tolerance)

    def met_outright(self, value: float) -> bool:
        """True when `value` meets the target value with no tolerance at all."""
        if self.value is None:
            raise ValueError(f"target for {self.metric!r} has no value ({self.source})")
        return meets(value, self.value, self.mode, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        """Inverse of to_dict; unknown keys are an error (they are likely typos)."""
        return _from_mapping(cls, data)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper checked against the suite's own baseline.

    Meaning: "at `scale_factor` x the base batch, `method` keeps the base batch's `metric` within
    the tolerance band", the band coming from several seeds of the suite's base-batch runs (see
    report.tolerance_band). Example: the abstract's LSTM claim is scale_factor=64, method="date".

    text: the claim as the source states it. source: where it is stated. status: one of
    TARGET_STATUSES ("unverified" when only a third party quotes it). metric/mode: the metric the
    claim is about and its direction (never guessed). scale_factor: k = batch / base batch, > 0.
    method: canonical scaling-method name the claim is about (e.g. "date").
    """

    text: str
    source: str
    status: str
    metric: str
    mode: str
    scale_factor: int
    method: str

    def __post_init__(self) -> None:
        _check_text("text", self.text)
        _check_text("source", self.source)
        _check_status(self.status)
        _check_text("metric", self.metric)
        _check_mode(self.mode)
        _check_text("method", self.method)
        if (
            not isinstance(self.scale_factor, int)
            or isinstance(self.scale_factor, bool)
            or self.scale_factor <= 0
        ):
            raise ValueError(f"scale_factor must be a positive int, got {self.scale_factor!r}")

    @property
    def verified(self) -> bool:
        """True unless the claim's own text is unverified (the reference is the suite baseline)."""
        return self.status != "unverified"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Claim:
        """Inverse of to_dict; unknown keys are an error."""
        return _from_mapping(cls, data)
