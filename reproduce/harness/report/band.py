"""The tolerance band: the suite's own run-to-run spread at the base batch, half-width
max(2 x sample std, floor), the tolerance every claim and largest-batch row is judged with; and
``keeps_band``, the test of a cell against it that the noise and budget reports share."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..core.targets import meets
from .aggregation import mean_std, ok_values, pooled_by_seed
from .formatting import direction_text, fmt_number
from .record_files import is_finite_number, sweep_info


@dataclass(frozen=True)
class ToleranceBand:
    """The suite's own run-to-run spread at the base batch, used as the tolerance of claims.

    half_width = max(2 * std, floor), std being the sample std over base-batch seeds; with fewer
    than two seeds std is unknown and the floor alone is used. Iterating yields (mean, half_width),
    so `mean, band = tolerance_band(...)` works.
    """

    metric: str
    mode: str
    base_batch_size: int
    mean: float | None
    half_width: float
    std: float | None
    n_seeds: int
    n_diverged: int
    seeds: tuple[int, ...]
    floor: float

    def __iter__(self) -> Iterator[float | None]:
        yield self.mean
        yield self.half_width

    @property
    def rule(self) -> str:
        """Which term of max(2 * std, floor) decided the width."""
        if self.std is None:
            return "floor (fewer than 2 ok seeds, std unknown)"
        return "2 x std" if 2 * self.std >= self.floor else "floor"

    def describe(self) -> str:
        """One paragraph saying how the band was derived (for the markdown reports)."""
        seeds = ", ".join(str(seed) for seed in self.seeds) or "none"
        if self.mean is None:
            return (
                f"No ok run at the base batch {self.base_batch_size} (seeds: {seeds}; "
                f"{self.n_diverged} diverged): no base-batch mean, so claims cannot be checked. "
                f"Band half-width = floor = {fmt_number(self.floor, strip=True)}."
            )
        if self.std is None:
            std_text, two_std = "unknown (fewer than 2 ok seeds)", "n/a"
        else:
            std_text, two_std = fmt_number(self.std, 2), fmt_number(2 * self.std, strip=True)
        mean, floor = fmt_number(self.mean), fmt_number(self.floor, strip=True)
        half_width = fmt_number(self.half_width, strip=True)
        diverged = f", {self.n_diverged} diverged and excluded" if self.n_diverged else ""
        return (
            f"Base-batch {self.metric}: mean {mean} over {self.n_seeds} ok seed(s) at "
            f"batch {self.base_batch_size} (seeds: {seeds}{diverged}; runs of every method pooled "
            f"by seed, since all scaling rules equal the base recipe at k = 1). Sample std "
            f"{std_text}. Band half-width = max(2 x std, floor) = max({two_std}, "
            f"{floor}) = {half_width} (decided by: "
            f"{self.rule}; the floor is set by the experiment). A run keeps the base "
            f"{self.metric} if its mean is no worse than {mean} by more than "
            f"{half_width} ({direction_text(self.mode)})."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict, including the deciding rule."""
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        data["rule"] = self.rule
        return data


def tolerance_band(
    records: Sequence[Mapping[str, Any]], base_batch_size: int, floor: float
) -> ToleranceBand:
    """Base-batch mean and tolerance band of the primary metric: band = max(2 * std, floor).

    Every run at `base_batch_size` is pooled across methods and deduplicated by seed (at k = 1 all
    methods are the same recipe). std is the sample std over ok seeds. `floor` (>= 0) comes from
    the experiment: the smallest difference worth calling a loss, so that a few lucky seeds with
    tiny spread do not make the band meaninglessly narrow.
    """
    if not (is_finite_number(floor) and floor >= 0):
        raise ValueError(f"floor must be a finite number >= 0, got {floor!r}")
    info = sweep_info(records)
    pooled = pooled_by_seed(records, base_batch_size)
    values = ok_values(pooled, info.primary_metric)
    mean, std = mean_std(values)
    half_width = floor if std is None else max(2 * std, floor)
    return ToleranceBand(
        metric=info.primary_metric,
        mode=info.mode,
        base_batch_size=base_batch_size,
        mean=mean,
        half_width=float(half_width),
        std=std,
        n_seeds=len(values),
        n_diverged=sum(run["status"] == "diverged" for run in pooled),
        seeds=tuple(run["seed"] for run in pooled),
        floor=float(floor),
    )


def keeps_band(runs: Sequence[Mapping[str, Any]], band: ToleranceBand) -> bool | None:
    """Whether a cell's runs keep the base band: True when every run is ok and their mean keeps
    it; None when nothing was run or the band is unknown (no ok base-batch run)."""
    if not runs or band.mean is None:
        return None
    if any(run["status"] != "ok" for run in runs):
        return False
    values = [run["final"][band.metric] for run in runs]
    return meets(sum(values) / len(values), band.mean, band.mode, band.half_width)
