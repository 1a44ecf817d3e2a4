"""Every table and plot of a sweep, generated only from its run records and its targets.

A sweep trains each (method, batch size, seed) and writes one JSON record per run into
`<out_dir>/runs/*.json` (schema version 1, documented in results/README.md). `write_report`
regenerates, from those records alone plus the experiment's `Target`s and `Claim`s:

    tables.md        provenance, primary metric per batch x method, tolerance band, recipes
    paper_diff.md    each target/claim: reference value, source, status, ours, delta, verdict
    paper_diff.json  the same rows, machine-readable, plus "missed_verified"
    speedup.md       steps and seconds to the time-to-target value, relative to the base batch
    summary.json     everything above as data, plus the list of records (name and sha256)
    plots/*.png      metric vs batch, lr schedules, learning curves

No number in these files is typed by hand: measured values come from the records, reference
values from `Target`s that carry their source. Output is deterministic (no timestamps, sorted
keys) so regenerating from the same records gives byte-identical markdown and JSON, and every
write is atomic (temporary file in the same directory, fsync, os.replace).

The method studied is DATE / LEGW (You et al., "Large-Batch Training for LSTM and Beyond", SC'19;
arXiv 1901.08256): at batch k*B0, lr0*sqrt(k) and warmup epochs w0*k. Its baselines are other
scaling rules of the same base recipe; at k = 1 every rule is the base recipe itself, which is why
base-batch runs are pooled across methods (deduplicated by seed) for the tolerance band.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from tabulate import tabulate

from reproduce.harness.targets import Claim, Target

SCHEMA_VERSION = 1
RUN_STATUSES = ("ok", "diverged")
VERDICTS = (
    "reproduced",  # meets the reference value outright (>= for max, <= for min)
    "within tolerance",  # meets it only thanks to the tolerance
    "missed",  # does not meet it, or a seed diverged
    "no verified reference",  # the reference is unknown or unverified; ours is still shown
    "not run",  # no record at the batch the reference applies to
    "not applicable",  # a target of the full recipe, and these records are of a reduced preset
    "not measured",  # runs exist but none recorded the reference's metric
)
#: The preset whose recipe the experiments' targets are references for. The others (smoke,
#: quick) shorten the budget or the data, so a target is shown there but never judged; claims,
#: which compare a preset with its own base batch, are judged at every preset.
TARGET_PRESET = "full"
DEFAULT_COMMAND = "reproduce.harness.report.write_report(out_dir, targets, claims, band_floor)"
NOT_RECORDED = "not recorded"

# Field -> accepted JSON types. Only the fields this module reads are required; a record missing
# one of them (or with the wrong type) is a real error, because records are written atomically.
_NUMBER = (int, float)
REQUIRED_FIELDS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "experiment": (str,),
    "preset": (str,),
    "method": (str,),
    "batch_size": (int,),
    "base_batch_size": (int,),
    "seed": (int,),
    "status": (str,),
    "primary_metric": (str,),
    "mode": (str,),
    "final": (dict,),
    "time_to_target": (dict, type(None)),
    "steps_to_target": (int, type(None)),
    "seconds_to_target": (*_NUMBER, type(None)),
    "total_steps": (int,),
    "steps_per_epoch": _NUMBER,
    "recipe": (dict,),
    "env": (dict,),
    "curves": (dict,),
    "evals": (list,),
}
_CURVE_KEYS = ("step", "lr", "loss")


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically: temp file in the same directory, fsync, os.replace.

    If anything fails before the replace, the previous file (if any) is left intact and the
    temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; see atomic_write_bytes."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_text(data: Any) -> str:
    # allow_nan=False: the output must be valid JSON for any consumer, not Python's dialect.
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


# --------------------------------------------------------------------------------------------
# Loading and validating records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordFile:
    """One run record with the file it came from and the sha256 of that file's bytes."""

    path: Path
    sha256: str
    record: dict[str, Any]


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    # bool is a subclass of int in Python but never a valid count, size or seed.
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _is_finite_number(value: Any) -> bool:
    return _is_type(value, _NUMBER) and math.isfinite(value)


def validate_record(record: Any, where: str = "record") -> None:
    """Raise ValueError (message starts with `where`) unless `record` fits schema version 1."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise ValueError(f"{where}: missing required fields {missing}")
    for name, types in REQUIRED_FIELDS.items():
        if not _is_type(record[name], types):
            accepted = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"{where}: field {name!r} must be {accepted}, got {record[name]!r}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ValueError(
            f"{where}: schema_version {record['schema_version']} is not {SCHEMA_VERSION}"
        )
    if record["status"] not in RUN_STATUSES:
        raise ValueError(f"{where}: status must be one of {RUN_STATUSES}, got {record['status']!r}")
    if record["mode"] not in ("min", "max"):
        raise ValueError(f"{where}: mode must be 'min' or 'max', got {record['mode']!r}")
    for name in ("batch_size", "base_batch_size"):
        if record[name] <= 0:
            raise ValueError(f"{where}: {name} must be positive, got {record[name]}")
    if not (math.isfinite(record["steps_per_epoch"]) and record["steps_per_epoch"] > 0):
        raise ValueError(f"{where}: steps_per_epoch must be > 0, got {record['steps_per_epoch']}")
    metric = record["primary_metric"]
    if record["status"] == "ok" and not _is_finite_number(record["final"].get(metric)):
        raise ValueError(
            f"{where}: status 'ok' but final[{metric!r}] is not a finite number: "
            f"{record['final'].get(metric)!r}"
        )
    curves = record["curves"]
    for key in _CURVE_KEYS:
        if not isinstance(curves.get(key), list):
            raise ValueError(f"{where}: curves[{key!r}] must be a list")
    lengths = {len(curves[key]) for key in _CURVE_KEYS}
    if len(lengths) != 1:
        raise ValueError(f"{where}: curves step/lr/loss have different lengths {sorted(lengths)}")
    for index, entry in enumerate(record["evals"]):
        if not (
            isinstance(entry, dict)
            and _is_finite_number(entry.get("epoch"))
            and isinstance(entry.get("metrics"), dict)
        ):
            raise ValueError(f"{where}: evals[{index}] needs a numeric 'epoch' and 'metrics' dict")
    target = record["time_to_target"]
    if target is not None and not (
        isinstance(target.get("metric"), str)
        and _is_finite_number(target.get("value"))
        and target.get("mode") in ("min", "max")
    ):
        raise ValueError(f"{where}: time_to_target needs metric, value and mode, got {target!r}")


def read_record_files(out_dir: str | os.PathLike[str]) -> list[RecordFile]:
    runs_dir = Path(out_dir) / "runs"
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"no runs/ directory in {out_dir}")
    files: list[RecordFile] = []
    seen: dict[tuple[str, int, int], Path] = {}
    # Sorted by name so every output built from the list is deterministic. Temporary files of an
    # atomic write (*.tmp) are never records; everything else ending in .json must be one.
    for path in sorted(runs_dir.glob("*.json")):
        if path.name.endswith(".tmp") or not path.is_file():
            continue
        raw = path.read_bytes()
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from error
        validate_record(record, str(path))
        key = (record["method"], record["batch_size"], record["seed"])
        if key in seen:
            raise ValueError(
                f"{path}: duplicate run (method={key[0]}, batch={key[1]}, seed={key[2]}), "
                f"already in {seen[key]}"
            )
        seen[key] = path
        files.append(RecordFile(path, hashlib.sha256(raw).hexdigest(), record))
    return files


def load_records(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read and validate every `<out_dir>/runs/*.json` record, sorted by file name.

    Skips nothing silently: a file that is not valid JSON, lacks a required field or has the wrong
    schema version raises ValueError naming the file. `*.tmp` files (unfinished atomic writes) are
    ignored. Two files describing the same (method, batch_size, seed) are an error too.
    """
    return [item.record for item in read_record_files(out_dir)]


@dataclass(frozen=True)
class SweepInfo:
    """What every record of one sweep must agree on."""

    experiment: str
    preset: str
    primary_metric: str
    mode: str
    base_batch_size: int


def sweep_info(records: Sequence[Mapping[str, Any]]) -> SweepInfo:
    """The experiment, preset, primary metric, mode and base batch shared by all records.

    Raises ValueError when there are no records or they disagree (a report must not mix sweeps).
    """
    if not records:
        raise ValueError("no run records")
    values = {}
    for name in ("experiment", "preset", "primary_metric", "mode", "base_batch_size"):
        found = sorted({record[name] for record in records}, key=str)
        if len(found) != 1:
            raise ValueError(f"records disagree on {name}: {found}")
        values[name] = found[0]
    return SweepInfo(**values)


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = statistics.fmean(values)
    # Sample standard deviation (ddof=1): the seeds are a sample of the run-to-run spread.
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std


@dataclass(frozen=True)
class Aggregate:
    """Summary of one (method, batch_size) cell over its seeds.

    n: runs (seeds); n_diverged: runs with status "diverged"; n_values: ok runs that recorded the
    metric; mean/std: over those ok runs (std is the sample std, None with fewer than 2 values).
    """

    method: str
    batch_size: int
    k: float
    metric: str
    n: int
    n_diverged: int
    n_values: int
    mean: float | None
    std: float | None
    seeds: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        return data


def _ok_values(runs: Sequence[Mapping[str, Any]], metric: str) -> list[float]:
    return [
        run["final"][metric]
        for run in runs
        if run["status"] == "ok" and _is_finite_number(run["final"].get(metric))
    ]


def _aggregate_runs(
    method: str, batch_size: int, base: int, runs: Sequence[Mapping[str, Any]], metric: str
) -> Aggregate:
    values = _ok_values(runs, metric)
    mean, std = _mean_std(values)
    return Aggregate(
        method=method,
        batch_size=batch_size,
        k=batch_size / base,
        metric=metric,
        n=len(runs),
        n_diverged=sum(run["status"] == "diverged" for run in runs),
        n_values=len(values),
        mean=mean,
        std=std,
        seeds=tuple(sorted(run["seed"] for run in runs)),
    )


def _group(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], list[Mapping[str, Any]]]:
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["method"], record["batch_size"]), []).append(record)
    return dict(sorted(groups.items()))


def aggregate(records: Sequence[Mapping[str, Any]], metric: str | None = None) -> list[Aggregate]:
    """Per (method, batch_size), sorted: seeds, diverged count, mean and sample std of `metric`.

    `metric` defaults to the records' primary metric. Mean and std are over ok runs only; a
    diverged run counts in n and n_diverged.
    """
    info = sweep_info(records)
    metric = metric or info.primary_metric
    return [
        _aggregate_runs(method, batch, info.base_batch_size, runs, metric)
        for (method, batch), runs in _group(records).items()
    ]


def _pooled_by_seed(
    records: Sequence[Mapping[str, Any]], batch_size: int
) -> list[Mapping[str, Any]]:
    """One run per seed at `batch_size`, across methods (used at the base batch, where k = 1).

    At k = 1 every scaling rule is the base recipe, so runs of different methods with the same
    seed are the same run; pick an ok one if any, deterministically (first method by name).
    """
    by_seed: dict[int, Mapping[str, Any]] = {}
    for record in sorted(records, key=lambda r: (r["seed"], r["status"] != "ok", r["method"])):
        if record["batch_size"] == batch_size:
            by_seed.setdefault(record["seed"], record)
    return [by_seed[seed] for seed in sorted(by_seed)]


# --------------------------------------------------------------------------------------------
# Tolerance band
# --------------------------------------------------------------------------------------------


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
                f"Band half-width = floor = {_fmt(self.floor, strip=True)}."
            )
        std_text = "unknown (fewer than 2 ok seeds)" if self.std is None else _fmt(self.std, 2)
        two_std = "n/a" if self.std is None else _fmt(2 * self.std, strip=True)
        diverged = f", {self.n_diverged} diverged and excluded" if self.n_diverged else ""
        return (
            f"Base-batch {self.metric}: mean {_fmt(self.mean)} over {self.n_seeds} ok seed(s) at "
            f"batch {self.base_batch_size} (seeds: {seeds}{diverged}; runs of every method pooled "
            f"by seed, since all scaling rules equal the base recipe at k = 1). Sample std "
            f"{std_text}. Band half-width = max(2 x std, floor) = max({two_std}, "
            f"{_fmt(self.floor, strip=True)}) = {_fmt(self.half_width, strip=True)} (decided by: "
            f"{self.rule}; the floor is set by the experiment). A run keeps the base "
            f"{self.metric} if its mean is no worse than {_fmt(self.mean)} by more than "
            f"{_fmt(self.half_width, strip=True)} ({_direction(self.mode)})."
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
    if not (_is_finite_number(floor) and floor >= 0):
        raise ValueError(f"floor must be a finite number >= 0, got {floor!r}")
    info = sweep_info(records)
    pooled = _pooled_by_seed(records, base_batch_size)
    values = _ok_values(pooled, info.primary_metric)
    mean, std = _mean_std(values)
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


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 4, strip: bool = False) -> str:
    """`digits` significant digits in fixed point (never scientific); '—' for None.

    strip=True drops trailing zeros (for deltas, widths, counts); without it the zeros stay, so a
    mean shows the precision it is given with.
    """
    if value is None:
        return "—"
    # Round in scientific notation first so 0.000999999 (float noise) counts as 0.001.
    rounded = float(f"{value:.{digits - 1}e}")
    if rounded == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(rounded)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{rounded:.{decimals}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _fmt_signed(value: float | None) -> str:
    if value is None:
        return "—"
    text = _fmt(value, strip=True)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def _direction(mode: str) -> str:
    return "higher is better" if mode == "max" else "lower is better"


def markdown_text(text: str) -> str:
    """Make free text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt_k(k: float) -> str:
    return f"{k:g}"


def _cell(agg: Aggregate) -> str:
    """'mean ± std (n=3)', with divergence made explicit."""
    if agg.n == 0:
        return "not run"
    if agg.n_values == 0:
        if agg.n_diverged == agg.n:
            return f"diverged ({agg.n_diverged}/{agg.n})"
        return f"not measured ({agg.n} runs)"
    text = _fmt(agg.mean)
    if agg.std is not None:
        text += f" ± {_fmt(agg.std, 2)}"
    text += f" (n={agg.n_values})"
    if agg.n_diverged:
        text += f"; diverged ({agg.n_diverged}/{agg.n})"
    return text


def _methods(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({record["method"] for record in records})


def _batches(records: Sequence[Mapping[str, Any]]) -> list[int]:
    return sorted({record["batch_size"] for record in records})


# --------------------------------------------------------------------------------------------
# Metric table
# --------------------------------------------------------------------------------------------


def metric_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the primary metric: batch sizes as rows, methods as columns.

    Cells are 'mean ± sample std (n=ok seeds)'; a cell whose every run diverged reads
    'diverged (n/m)', a partly diverged one appends it; a method not run at a batch reads 'not run'.
    """
    info = sweep_info(records)
    cells = {(agg.method, agg.batch_size): agg for agg in aggregate(records)}
    methods = _methods(records)
    rows = []
    for batch in _batches(records):
        row = [str(batch), _fmt_k(batch / info.base_batch_size)]
        for method in methods:
            agg = cells.get((method, batch))
            row.append(_cell(agg) if agg else "not run")
        rows.append(row)
    headers = ["batch", "k", *methods]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def recipe_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the resolved recipe per (method, batch), as the records state it."""
    rows = []
    for (method, batch), runs in _group(records).items():
        first = min(runs, key=lambda run: run["seed"])
        recipe = first["recipe"]
        rows.append(
            [
                method,
                str(batch),
                _fmt_value(recipe.get("lr")),
                _fmt_value(recipe.get("warmup_epochs")),
                _fmt_value(recipe.get("epochs")),
                _fmt_value(recipe.get("decay")),
                str(first["total_steps"]),
                ", ".join(str(run["seed"]) for run in sorted(runs, key=lambda r: r["seed"])),
            ]
        )
    headers = ["method", "batch", "lr", "warmup epochs", "epochs", "decay", "steps", "seeds"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _fmt_value(value: Any) -> str:
    if value is None:
        return NOT_RECORDED
    if _is_finite_number(value) and not isinstance(value, int):
        return _fmt(value, 6, strip=True)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# --------------------------------------------------------------------------------------------
# Paper diff
# --------------------------------------------------------------------------------------------


def _verdict(
    reference: Target, ours: float | None, n: int, n_diverged: int, n_values: int
) -> tuple[str, str]:
    """(verdict, note) for one comparison; see VERDICTS."""
    notes = []
    if n and n_diverged:
        notes.append(f"{n_diverged}/{n} runs diverged")
    if n and n_values < n - n_diverged:
        notes.append(f"{n - n_diverged - n_values} ok runs lack {reference.metric!r}")
    note = "; ".join(notes)
    if not reference.verified:
        return "no verified reference", note
    if n == 0:
        return "not run", note
    if n_diverged:
        # A divergence is a loss at that batch whatever the surviving seeds reached.
        return "missed", note
    if ours is None:
        return "not measured", note
    if reference.met_outright(ours):
        return "reproduced", note
    if reference.met(ours):
        return "within tolerance", note
    return "missed", note


def _row(
    kind: str,
    what: str,
    reference: Target,
    method: str,
    batch: int,
    base: int,
    runs: Sequence[Mapping[str, Any]],
    extra_note: str = "",
) -> dict[str, Any]:
    values = _ok_values(runs, reference.metric)
    ours, ours_std = _mean_std(values)
    n_diverged = sum(run["status"] == "diverged" for run in runs)
    verdict, note = _verdict(reference, ours, len(runs), n_diverged, len(values))
    delta = None if ours is None or reference.value is None else ours - reference.value
    return {
        "kind": kind,
        "what": what,
        "metric": reference.metric,
        "mode": reference.mode,
        "method": method,
        "batch_size": batch,
        "k": batch / base,
        "target": reference.value,
        "tolerance": reference.tolerance,
        "source": reference.source,
        "status": reference.status,
        "ours": ours,
        "ours_std": ours_std,
        "n": len(runs),
        "n_diverged": n_diverged,
        "n_values": len(values),
        "seeds": sorted(run["seed"] for run in runs),
        "delta": delta,
        "verdict": verdict,
        "note": "; ".join(part for part in (extra_note, note) if part),
    }


def _check_consistent(metric: str, mode: str, info: SweepInfo, what: str) -> None:
    if metric == info.primary_metric and mode != info.mode:
        raise ValueError(
            f"{what}: mode {mode!r} contradicts the records' mode {info.mode!r} for {metric!r}"
        )


def paper_diff(
    records: Sequence[Mapping[str, Any]],
    targets: Sequence[Target],
    claims: Sequence[Claim],
    band: ToleranceBand,
) -> list[dict[str, Any]]:
    """One row per target, per claim, and per (method, largest batch) against the band.

    Target rows: a target with batch_size None (or equal to the base batch) is checked on the
    base batch, pooled over methods by seed; otherwise once per method run at that batch (or only
    for target.method when set). Claim rows: the reference is the suite's base-batch mean with the
    band as tolerance, checked for claim.method at base * scale_factor ("not run" if that batch is
    missing). Band rows (kind "band"): each method at its largest batch vs the band, showing where
    baselines lose; they are informative and do not count as missed targets.

    Verdicts: "reproduced" = meets the reference value outright (>= for max, <= for min);
    "within tolerance" = only with the tolerance; "missed" otherwise or if any seed diverged;
    "no verified reference" when the reference is unknown/unverified (ours is still reported);
    "not run" / "not measured" when there is nothing to compare; "not applicable" for every
    target row when the records are not of TARGET_PRESET.
    """
    info = sweep_info(records)
    base = info.base_batch_size
    if band.metric != info.primary_metric or band.base_batch_size != base:
        raise ValueError("band was not computed from these records' primary metric and base batch")
    groups = _group(records)
    rows: list[dict[str, Any]] = []

    reduced = info.preset != TARGET_PRESET
    for target in targets:
        _check_consistent(target.metric, target.mode, info, f"target {target.source!r}")
        what = target.metric + (f": {target.note}" if target.note else "")
        batch = target.batch_size or base
        if batch == base:
            runs = _pooled_by_seed(records, base)
            method = target.method or "any (k=1)"
            target_rows = [_row("target", what, target, method, base, base, runs)]
        else:
            methods = [target.method] if target.method else [m for m, b in groups if b == batch]
            target_rows = [
                _row("target", what, target, method, batch, base, groups.get((method, batch), []))
                for method in methods or ["—"]
            ]
        for row in target_rows:
            if reduced:
                row["verdict"] = "not applicable"
                row["note"] = "; ".join(
                    part
                    for part in (
                        f"a reference for the {TARGET_PRESET} preset's recipe; these runs are "
                        f"the reduced {info.preset!r} preset",
                        row["note"],
                    )
                    if part
                )
        rows.extend(target_rows)

    baseline_source = f"this suite: base batch {base}, {band.n_seeds} seed(s)"
    if band.mean is not None:
        baseline = Target(
            metric=band.metric,
            value=band.mean,
            mode=band.mode,
            tolerance=band.half_width,
            source=baseline_source,
            status="suite baseline",
            note="base-batch mean; tolerance = band",
        )
    else:
        baseline = None

    for claim in claims:
        _check_consistent(claim.metric, claim.mode, info, f"claim {claim.text!r}")
        if claim.metric != band.metric:
            # a reduced preset judged by another metric (Preset.primary_metric): not its claim
            reference = Target(
                metric=claim.metric,
                value=None,
                mode=claim.mode,
                tolerance=band.half_width,
                source=claim.source,
                status=claim.status,
            )
            row = _row(
                "claim", claim.text, reference, claim.method, base * claim.scale_factor, base, []
            )
            row["verdict"] = "not applicable"
            row["note"] = (
                f"the claim is about {claim.metric!r}; the {info.preset!r} preset's records are "
                f"judged by {band.metric!r}"
            )
            rows.append(row)
            continue
        batch = base * claim.scale_factor
        # With no base-batch mean the value is None, which makes the reference unverified.
        reference = Target(
            metric=claim.metric,
            value=None if baseline is None else baseline.value,
            mode=claim.mode,
            tolerance=band.half_width,
            source=claim.source,
            status=claim.status,
        )
        extra = "" if baseline is not None else "no ok base-batch run, so no baseline"
        row = _row(
            "claim",
            claim.text,
            reference,
            claim.method,
            batch,
            base,
            groups.get((claim.method, batch), []),
            extra,
        )
        row["scale_factor"] = claim.scale_factor
        row["baseline_source"] = baseline_source
        rows.append(row)

    largest_overall = max(_batches(records))
    for method in _methods(records):
        largest = max(b for m, b in groups if m == method)
        if largest == base:
            continue
        reference = baseline or Target(
            metric=band.metric,
            value=None,
            mode=band.mode,
            tolerance=band.half_width,
            source=baseline_source,
            status="unverified",
        )
        note = "" if largest == largest_overall else f"not run at batch {largest_overall}"
        what = f"keeps the base-batch {band.metric} (band)"
        rows.append(
            _row("band", what, reference, method, largest, base, groups[(method, largest)], note)
        )
    return rows


def missed_verified(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many target and claim rows (not informative band rows) were missed."""
    return sum(row["kind"] in ("target", "claim") and row["verdict"] == "missed" for row in rows)


def ours_cell(row: Mapping[str, Any]) -> str:
    if row["n"] == 0:
        return "not run"
    if row["ours"] is None:
        if row["n_diverged"] == row["n"]:
            return f"diverged ({row['n_diverged']}/{row['n']})"
        return "not measured"
    text = _fmt(row["ours"])
    if row["ours_std"] is not None:
        text += f" ± {_fmt(row['ours_std'], 2)}"
    text += f" (n={row['n_values']})"
    if row["n_diverged"]:
        text += f"; diverged ({row['n_diverged']}/{row['n']})"
    return text


def target_cell(row: Mapping[str, Any]) -> str:
    if row["target"] is None:
        return "unknown"
    text = _fmt(row["target"])
    if row["tolerance"]:
        text += f" ± {_fmt(row['tolerance'], strip=True)}"
    return f"{text} ({row['mode']})"


def paper_diff_markdown(
    rows: Sequence[Mapping[str, Any]], band: ToleranceBand | None = None
) -> str:
    """Markdown of paper_diff rows: targets and claims first, then the largest-batch band rows."""
    lines: list[str] = []
    main = [row for row in rows if row["kind"] in ("target", "claim")]
    band_rows = [row for row in rows if row["kind"] == "band"]
    lines.append("## Targets and claims\n")
    if main:
        table = [
            [
                row["kind"],
                markdown_text(row["what"]),
                str(row["batch_size"]),
                markdown_text(row["method"]),
                target_cell(row),
                markdown_text(row["source"]),
                row["status"],
                ours_cell(row),
                _fmt_signed(row["delta"]),
                row["verdict"],
                markdown_text(row["note"]),
            ]
            for row in main
        ]
        headers = ["kind", "what", "batch", "method", "target", "source", "status", "ours"]
        headers += ["Δ (ours − target)", "verdict", "note"]
        lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    else:
        lines.append("No targets or claims were given for this experiment.")
    lines.append(f"\nVerified targets and claims missed: **{missed_verified(rows)}**.\n")
    lines.append("## Largest batch of each method vs the base-batch band\n")
    if band is not None:
        lines.append(band.describe() + "\n")
    if band_rows:
        table = [
            [
                row["method"],
                str(row["batch_size"]),
                _fmt_k(row["k"]),
                ours_cell(row),
                target_cell(row),
                _fmt_signed(row["delta"]),
                row["verdict"],
                row["note"],
            ]
            for row in band_rows
        ]
        headers = ["method", "batch", "k", "ours", "base mean ± band", "Δ", "verdict", "note"]
        lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    else:
        lines.append("Only the base batch was run: nothing to compare with the band.")
    lines.append("\n## Verdicts\n")
    lines.append(
        "- **reproduced**: ours meets the reference value outright (>= for max, <= for min).\n"
        "- **within tolerance**: ours meets it only with the tolerance (target's own tolerance, "
        "or the band for claims).\n"
        "- **missed**: otherwise, or at least one seed diverged.\n"
        "- **no verified reference**: the reference value is unknown or unverified; ours is "
        "shown anyway.\n"
        "- **not run** / **not measured**: no record at that batch / no record has the metric."
        "\n- **not applicable**: a reference for the full preset's recipe, shown beside runs "
        "of a reduced preset (smoke, quick) but not judged."
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Speedup
# --------------------------------------------------------------------------------------------


def _reached(runs: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [run[key] for run in runs if run[key] is not None]


def speedup_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, batch): mean steps/seconds to target over seeds that reached it, and ratios.

    The base is every run at the base batch pooled by seed (all methods coincide at k = 1).
    ratio = base mean / this mean, so > 1 means fewer steps (or seconds) than the base batch.
    A run that diverged after reaching the target still counts as having reached it.
    """
    info = sweep_info(records)
    pooled = _pooled_by_seed(records, info.base_batch_size)
    base_steps, _ = _mean_std(_reached(pooled, "steps_to_target"))
    base_seconds, _ = _mean_std(_reached(pooled, "seconds_to_target"))
    rows = []
    for (method, batch), runs in _group(records).items():
        steps, _ = _mean_std(_reached(runs, "steps_to_target"))
        seconds, _ = _mean_std(_reached(runs, "seconds_to_target"))
        rows.append(
            {
                "method": method,
                "batch_size": batch,
                "k": batch / info.base_batch_size,
                "n": len(runs),
                "n_reached": len(_reached(runs, "steps_to_target")),
                "n_diverged": sum(run["status"] == "diverged" for run in runs),
                "steps_to_target": steps,
                "seconds_to_target": seconds,
                "step_ratio": _ratio(base_steps, steps),
                "seconds_ratio": _ratio(base_seconds, seconds),
            }
        )
    return rows


def _ratio(base: float | None, value: float | None) -> float | None:
    if base is None or value is None or value == 0:
        return None
    return base / value


def _time_targets(records: Sequence[Mapping[str, Any]]) -> list[str]:
    found = {
        json.dumps(record["time_to_target"], sort_keys=True)
        for record in records
        if record["time_to_target"] is not None
    }
    return sorted(found)


def speedup_table(records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per method and batch, mean steps and seconds to target and ratio vs base batch.

    'not reached' when no seed reached the target; ratio = base / this (> 1 = faster).
    """
    table = []
    for row in speedup_rows(records):
        reached = f"{row['n_reached']}/{row['n']}"
        if row["steps_to_target"] is None:
            steps = seconds = "not reached"
        else:
            steps = f"{_fmt(row['steps_to_target'], strip=True)} ({reached})"
            seconds = _fmt(row["seconds_to_target"], strip=True)
        table.append(
            [
                row["method"],
                str(row["batch_size"]),
                _fmt_k(row["k"]),
                steps,
                seconds,
                "—" if row["step_ratio"] is None else f"{_fmt(row['step_ratio'], 3)}x",
                "—" if row["seconds_ratio"] is None else f"{_fmt(row['seconds_ratio'], 3)}x",
                f"{row['n_diverged']}/{row['n']}",
            ]
        )
    headers = ["method", "batch", "k", "steps to target (reached)", "seconds to target"]
    headers += ["step speedup", "time speedup", "diverged"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


# --------------------------------------------------------------------------------------------
# Plots (Figure objects directly: no pyplot, no global backend switch; PNG via the Agg canvas)
# --------------------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 4.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Any, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    # No "Software" metadata: keeps the PNG independent of the matplotlib version string.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return atomic_write_bytes(path, buffer.getvalue())


def _legend(axis: Any) -> None:
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small")


def _colors(methods: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {method: palette(index % 10) for index, method in enumerate(methods)}


def _log2_batch_axis(axis: Any, batches: Sequence[int]) -> None:
    from matplotlib.ticker import NullLocator

    axis.set_xscale("log", base=2)
    axis.set_xlim(min(batches) / 1.5, max(batches) * 1.5)
    axis.set_xticks(list(batches))
    axis.set_xticklabels([str(batch) for batch in batches])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel("global batch size (examples, log2 scale)")


#: Plotted values spanning more than this ratio get a log axis (a blown-up run's perplexity in
#: the millions would otherwise flatten every other curve onto the axis).
LOG_AXIS_RATIO = 100.0


def _log_axis_if_wide(axis: Any, values: Sequence[float]) -> bool:
    """Switch ``axis``'s y scale to log when the positive ``values`` span > LOG_AXIS_RATIO."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite or min(finite) <= 0 or max(finite) / min(finite) <= LOG_AXIS_RATIO:
        return False
    axis.set_yscale("log")
    return True


def plot_metric_vs_batch(
    records: Sequence[Mapping[str, Any]], band: ToleranceBand, path: str | os.PathLike[str]
) -> Path:
    """Final primary metric (mean ± sample std over seeds) vs batch per method, with the band.

    The shaded band is base mean ± band half-width; batches where every seed of a method diverged
    are marked with an x at the bottom of the axes.
    """
    info = sweep_info(records)
    methods = _methods(records)
    colors = _colors(methods)
    figure = _figure()
    axis = figure.add_subplot()
    if band.mean is not None:
        axis.axhspan(
            band.mean - band.half_width,
            band.mean + band.half_width,
            color="0.85",
            label=f"base batch {band.base_batch_size}: mean ± band",
        )
        axis.axhline(band.mean, color="0.4", linewidth=1, linestyle="--")
    aggregates = aggregate(records)
    plotted: list[float] = []
    for index, method in enumerate(methods):
        cells = [agg for agg in aggregates if agg.method == method]
        measured = [agg for agg in cells if agg.mean is not None]
        plotted += [agg.mean for agg in measured]
        # Small horizontal offsets keep error bars of different methods apart at the same batch.
        shift = 2 ** ((index - (len(methods) - 1) / 2) * 0.03)
        if measured:
            axis.errorbar(
                [agg.batch_size * shift for agg in measured],
                [agg.mean for agg in measured],
                yerr=[agg.std or 0.0 for agg in measured],
                marker="o",
                capsize=3,
                color=colors[method],
                label=method,
            )
        diverged = [agg.batch_size for agg in cells if agg.mean is None and agg.n_diverged]
        if diverged:
            axis.scatter(
                [batch * shift for batch in diverged],
                [0.03] * len(diverged),
                marker="x",
                color=colors[method],
                transform=axis.get_xaxis_transform(),
                label=f"{method}: all seeds diverged",
            )
    _log2_batch_axis(axis, _batches(records))
    log_note = ", log scale" if _log_axis_if_wide(axis, plotted) else ""
    axis.set_ylabel(f"final test {info.primary_metric} ({_direction(info.mode)}{log_note})")
    axis.set_title(f"{info.experiment} ({info.preset}): {info.primary_metric} vs batch size")
    axis.grid(True, alpha=0.3)
    _legend(axis)
    figure.tight_layout()
    return _save_png(figure, path)


def _representative(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The lowest-seed run, preferring ok runs (for single-curve plots)."""
    return min(runs, key=lambda run: (run["status"] != "ok", run["seed"]))


def _curve_runs(
    records: Sequence[Mapping[str, Any]],
) -> tuple[list[tuple[str, int, list[Mapping[str, Any]]]], list[Mapping[str, Any]]]:
    """Per method, its runs at its largest batch; plus the pooled base-batch runs."""
    info = sweep_info(records)
    groups = _group(records)
    per_method = []
    for method in _methods(records):
        largest = max(b for m, b in groups if m == method)
        per_method.append((method, largest, groups[(method, largest)]))
    return per_method, _pooled_by_seed(records, info.base_batch_size)


def _epochs(run: Mapping[str, Any]) -> list[float]:
    return [step / run["steps_per_epoch"] for step in run["curves"]["step"]]


def plot_lr_schedules(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Learning rate vs epoch: each method at its largest batch, and the base-batch schedule.

    epoch = step / steps_per_epoch. Curves of diverged runs stop at the divergence.
    """
    info = sweep_info(records)
    per_method, base_runs = _curve_runs(records)
    colors = _colors(_methods(records))
    figure = _figure()
    axis = figure.add_subplot()
    if base_runs:
        run = _representative(base_runs)
        axis.plot(
            _epochs(run),
            run["curves"]["lr"],
            color="black",
            linestyle="--",
            label=f"base batch {info.base_batch_size}",
        )
    for method, batch, runs in per_method:
        if batch == info.base_batch_size:
            continue
        run = _representative(runs)
        status = ", diverged" if run["status"] == "diverged" else ""
        axis.plot(
            _epochs(run),
            run["curves"]["lr"],
            color=colors[method],
            label=f"{method}, batch {batch}{status}",
        )
    axis.set_xlabel("epoch (step / steps per epoch)")
    axis.set_ylabel("learning rate (per optimizer step)")
    axis.set_title(f"{info.experiment} ({info.preset}): learning-rate schedules")
    axis.grid(True, alpha=0.3)
    _legend(axis)
    figure.tight_layout()
    return _save_png(figure, path)


def _smooth(values: Sequence[float]) -> tuple[list[int], list[float]]:
    """Trailing moving average over ~2% of the curve; returns (indices, averages). Drops NaN/inf."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    keep = np.flatnonzero(np.isfinite(array))
    if keep.size == 0:
        return [], []
    finite = array[keep]
    window = max(1, finite.size // 50)
    kernel = np.ones(window) / window
    averaged = np.convolve(finite, kernel, mode="valid")
    return keep[window - 1 :].tolist(), averaged.tolist()


def _eval_points(run: Mapping[str, Any], metric: str) -> tuple[list[float], list[float], str]:
    evals = run["evals"]
    splits = sorted({entry.get("split", "eval") for entry in evals})
    split = "valid" if "valid" in splits else (splits[0] if splits else "eval")
    points = [
        (entry["epoch"], entry["metrics"][metric])
        for entry in evals
        if entry.get("split", "eval") == split and _is_finite_number(entry["metrics"].get(metric))
    ]
    return [p[0] for p in points], [p[1] for p in points], split


def plot_learning_curves(
    records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]
) -> Path:
    """Left: evaluated primary metric vs epoch; right: smoothed training loss vs epoch.

    Each method at its largest batch (every seed, same color), plus the base batch dashed.
    Evaluations use the 'valid' split when present. Loss is smoothed with a trailing moving
    average over about 2% of the steps.
    """
    info = sweep_info(records)
    per_method, base_runs = _curve_runs(records)
    colors = _colors(_methods(records))
    figure = _figure(11.0, 4.5)
    metric_axis, loss_axis = figure.subplots(1, 2)
    splits: set[str] = set()
    plotted: list[float] = []

    def draw(run: Mapping[str, Any], label: str | None, **style: Any) -> None:
        epochs, values, split = _eval_points(run, info.primary_metric)
        if epochs:
            splits.add(split)
            plotted.extend(values)
            metric_axis.plot(epochs, values, marker=".", label=label, **style)
        indices, losses = _smooth(run["curves"]["loss"])
        step_epochs = _epochs(run)
        loss_axis.plot([step_epochs[i] for i in indices], losses, label=label, **style)

    for index, run in enumerate(base_runs):
        label = f"base batch {info.base_batch_size}" if index == 0 else None
        draw(run, label, color="black", linestyle="--", linewidth=1)
    for method, batch, runs in per_method:
        if batch == info.base_batch_size:
            continue
        for index, run in enumerate(sorted(runs, key=lambda r: r["seed"])):
            label = f"{method}, batch {batch}" if index == 0 else None
            draw(run, label, color=colors[method], linewidth=1)
    split_text = "/".join(sorted(splits)) or "eval"
    metric_axis.set_xlabel("epoch")
    log_note = ", log scale" if _log_axis_if_wide(metric_axis, plotted) else ""
    metric_axis.set_ylabel(
        f"{split_text} {info.primary_metric} ({_direction(info.mode)}{log_note})"
    )
    metric_axis.set_title(f"{info.primary_metric} during training")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss (moving average over steps)")
    loss_axis.set_title("training loss")
    for axis in (metric_axis, loss_axis):
        axis.grid(True, alpha=0.3)
        _legend(axis)
    figure.suptitle(f"{info.experiment} ({info.preset}): largest batch per method vs base batch")
    figure.tight_layout()
    return _save_png(figure, path)


# --------------------------------------------------------------------------------------------
# Provenance and the whole report
# --------------------------------------------------------------------------------------------


def provenance(files: Sequence[RecordFile]) -> dict[str, Any]:
    """Where the numbers come from, taken only from the records' env (never typed)."""

    def value(env: Mapping[str, Any], key: str) -> str:
        found = env.get(key)
        return NOT_RECORDED if found is None or found == "" else str(found)

    def distinct(key: str) -> list[str]:
        return sorted({value(item.record["env"], key) for item in files})

    commits = set()
    for item in files:
        env = item.record["env"]
        commit = value(env, "git_commit")
        state = {True: " (dirty)", False: " (clean)"}.get(env.get("git_dirty"), "")
        commits.add(commit + state)
    dates = sorted(
        str(item.record["env"]["date"]) for item in files if item.record["env"].get("date")
    )
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.path.name):
        digest.update(f"{item.path.name}\0{item.sha256}\n".encode())
    return {
        "n_records": len(files),
        "records_sha256": digest.hexdigest(),
        "records": [{"file": item.path.name, "sha256": item.sha256} for item in files],
        "git_commits": sorted(commits),
        "dates": [dates[0], dates[-1]] if dates else [],
        "devices": distinct("device"),
        "device_names": distinct("device_name"),
        "torch": distinct("torch"),
        "python": distinct("python"),
        "commands": distinct("command"),
    }


class PlannedRun(Protocol):
    """What the coverage check needs of a planned run (``sweep.PlannedRun`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def same_run_as(self) -> str | None: ...
    @property
    def recipe(self) -> Any: ...  # has to_dict()


def coverage(
    files: Sequence[RecordFile], plan: Sequence[PlannedRun], preset: str
) -> dict[str, Any]:
    """Which runs of the preset's plan have a record, which do not, and what the missing ones
    would cost at the recorded runs' own training time.

    A record counts only if its file name and resolved recipe are the planned ones (a record made
    with another recipe, e.g. a tuning point, is "outside the plan"). A missing run that shares
    its recipe with another (k = 1) costs nothing once that run is trained. The estimate is the
    missing trained runs times the mean ``train_seconds`` of the recorded ok trained runs of the
    plan: every run of a preset covers the same epochs, so the runs differ mainly in per-example
    speed at their batch size, which the estimate does not model (it says so).
    """
    by_name = {item.path.name: item.record for item in files}
    # each planned recipe as a record holds it (through JSON: tuples are lists), and its identity
    recipes = {run.name: json.loads(json.dumps(run.recipe.to_dict())) for run in plan}

    def identity(run: PlannedRun) -> tuple[str, int]:
        return json.dumps(recipes[run.name], sort_keys=True), run.seed

    def recorded(run: PlannedRun) -> bool:
        record = by_name.get(run.name)
        return record is not None and record.get("recipe") == recipes[run.name]

    in_plan = [run for run in plan if recorded(run)]
    trained = {identity(run) for run in in_plan}
    # A planned run without a record of its own is still covered when a recorded run has its
    # recipe and seed: at k = 1 that is the same training run (the report pools it by seed).
    missing = [run for run in plan if not recorded(run) and identity(run) not in trained]
    planned_names = {run.name for run in in_plan}
    planned_seeds = Counter((run.method, run.batch_size) for run in plan)
    missing_seeds: dict[tuple[str, int], list[int]] = {}
    for run in missing:
        missing_seeds.setdefault((run.method, run.batch_size), []).append(run.seed)
    missing_by_method: dict[str, list[str]] = {}
    for (method, batch), seeds in missing_seeds.items():
        cell = str(batch)
        if len(seeds) < planned_seeds[method, batch]:  # only some seeds missing: name them
            cell += f" (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))})"
        missing_by_method.setdefault(method, []).append(cell)
    missing_trained = len({identity(run) for run in missing})
    seconds = [
        float(record["train_seconds"])
        for record in (by_name[run.name] for run in in_plan)
        if record["status"] == "ok"
        and record.get("same_run_as") is None  # trained, not a shared copy
        and _is_finite_number(record.get("train_seconds"))
    ]
    mean_seconds = statistics.fmean(seconds) if seconds else None
    return {
        "preset": preset,
        "planned": len(plan),
        "recorded": len(plan) - len(missing),
        "outside_plan": sorted(name for name in by_name if name not in planned_names),
        "missing": [run.name for run in missing],
        "missing_by_method": missing_by_method,  # cells in plan order: "batch" or "batch (seeds)"
        "missing_trained": missing_trained,
        "mean_train_seconds": mean_seconds,
        "mean_train_seconds_n": len(seconds),
        "estimated_missing_train_hours": (
            missing_trained * mean_seconds / 3600 if mean_seconds is not None else None
        ),
    }


def coverage_markdown(cov: Mapping[str, Any], hardware: Sequence[str] = ()) -> str:
    """One paragraph: recorded / planned, what is missing, and the estimated training time."""
    preset = f"`{cov['preset']}` preset"
    if not cov["missing"]:
        text = f"All {cov['planned']} planned runs of the {preset} are recorded."
    else:
        gaps = "; ".join(
            f"`{method}` at {', '.join(cells)}"
            for method, cells in cov["missing_by_method"].items()
        )
        text = (
            f"**Partial sweep: {cov['recorded']} of the {cov['planned']} planned runs of the "
            f"{preset} are recorded.** Not recorded: {gaps}."
        )
        if cov["mean_train_seconds"] is not None:
            on = f" on {', '.join(hardware)}" if hardware else ""
            text += (
                f" Training the {cov['missing_trained']} missing runs would take about "
                f"{cov['estimated_missing_train_hours']:.1f} h{on}, at the mean training time "
                f"of the {cov['mean_train_seconds_n']} recorded ok runs "
                f"({cov['mean_train_seconds'] / 60:.1f} min each; per-batch speed differences "
                "not modelled)."
            )
    if cov["outside_plan"]:
        text += (
            f" {len(cov['outside_plan'])} record(s) are outside the plan (another recipe or "
            "batch): shown in the tables, not counted here."
        )
    return text


def _provenance_markdown(prov: Mapping[str, Any], command: str) -> str:
    dates = " to ".join(prov["dates"]) if prov["dates"] else NOT_RECORDED
    rows = [
        ["git commits", ", ".join(prov["git_commits"])],
        ["run dates (first to last)", dates],
        ["devices", ", ".join(prov["devices"])],
        ["CPU/GPU models", ", ".join(prov["device_names"])],
        ["torch", ", ".join(prov["torch"])],
        ["python", ", ".join(prov["python"])],
        ["run commands", "<br>".join(f"`{c}`" for c in prov["commands"])],
    ]
    table = tabulate(rows, headers=["", "from the records"], tablefmt="github")
    return (
        "<!-- Generated file: do not edit. Regenerate from the run records. -->\n"
        f"Generated by `{command}` from {prov['n_records']} run records in `runs/` "
        f"(sha256 of the set: `{prov['records_sha256'][:16]}`; per-file hashes in "
        f"summary.json).\n\n{table}\n"
    )


def _header(info: SweepInfo, title: str) -> str:
    return f"# {info.experiment} / {info.preset}: {title}\n\n"


REPORT_FILES = {
    "tables": "tables.md",
    "paper_diff": "paper_diff.md",
    "paper_diff_json": "paper_diff.json",
    "speedup": "speedup.md",
    "summary": "summary.json",
    "plot_metric_vs_batch": "plots/metric_vs_batch.png",
    "plot_lr_schedules": "plots/lr_schedules.png",
    "plot_learning_curves": "plots/learning_curves.png",
}


def write_report(
    out_dir: str | os.PathLike[str],
    targets: Sequence[Target],
    claims: Sequence[Claim],
    band_floor: float,
    *,
    command: str = DEFAULT_COMMAND,
    plan: Sequence[PlannedRun] | None = None,
) -> dict[str, Path]:
    """Regenerate every table, plot and summary of `<out_dir>` from `<out_dir>/runs/*.json`.

    `targets`/`claims` come from the experiment, `band_floor` is its tolerance-band floor, and
    `command` is what the provenance header names as the regenerating command (the CLI passes its
    own command line). With `plan` (every run of the records' preset), the tables and summary also
    say which planned runs are missing and estimate their training time (`coverage`). Writes
    are atomic and the text output is deterministic. Returns
    {name: path} for the files listed in REPORT_FILES. Raises ValueError on bad or no records.
    """
    out = Path(out_dir)
    files = read_record_files(out)
    records = [item.record for item in files]
    if not records:
        raise ValueError(f"no run records in {out / 'runs'}")
    info = sweep_info(records)
    band = tolerance_band(records, info.base_batch_size, band_floor)
    prov = provenance(files)
    head = _provenance_markdown(prov, command)
    cov = coverage(files, plan, info.preset) if plan is not None else None
    cov_text = "\n\n## Coverage\n\n" + coverage_markdown(cov, prov["device_names"]) if cov else ""
    paths = {name: out / relative for name, relative in REPORT_FILES.items()}

    tables = (
        _header(info, "results")
        + head
        + f"\n## Final test {info.primary_metric} ({_direction(info.mode)})\n\n"
        + "Mean ± sample std over ok seeds (n = ok seeds); k = batch / base batch "
        + f"{info.base_batch_size}.\n\n"
        + metric_table(records)
        + cov_text
        + "\n\n## Tolerance band\n\n"
        + band.describe()
        + "\n\n## Resolved recipes (first seed of each cell)\n\n"
        + recipe_table(records)
        + "\n"
    )
    atomic_write_text(paths["tables"], tables)

    rows = paper_diff(records, targets, claims, band)
    atomic_write_text(
        paths["paper_diff"],
        _header(info, "paper diff") + head + "\n" + paper_diff_markdown(rows, band),
    )
    diff_json = {
        "experiment": info.experiment,
        "preset": info.preset,
        "primary_metric": info.primary_metric,
        "mode": info.mode,
        "band": band.to_dict(),
        "rows": rows,
        "missed_verified": missed_verified(rows),
    }
    atomic_write_text(paths["paper_diff_json"], _json_text(diff_json))

    time_targets = _time_targets(records)
    target_text = (
        "Time-to-target value(s) from the records: "
        + (", ".join(f"`{t}`" for t in time_targets) or "none defined")
        + ". Steps/seconds are the first evaluation meeting it, averaged over seeds that reached "
        + "it; speedup = base-batch mean / this mean (> 1 = faster), base batch pooled by seed.\n"
    )
    if len(time_targets) > 1:
        target_text += "\n**Warning: the records disagree on the target; ratios mix targets.**\n"
    atomic_write_text(
        paths["speedup"],
        _header(info, "time to target")
        + head
        + "\n"
        + target_text
        + "\n"
        + speedup_table(records)
        + "\n",
    )

    plot_metric_vs_batch(records, band, paths["plot_metric_vs_batch"])
    plot_lr_schedules(records, paths["plot_lr_schedules"])
    plot_learning_curves(records, paths["plot_learning_curves"])

    verdict_counts = {verdict: 0 for verdict in VERDICTS}
    for row in rows:
        if row["kind"] != "band":
            verdict_counts[row["verdict"]] += 1
    summary = {
        "report_version": 1,
        "experiment": info.experiment,
        "preset": info.preset,
        "primary_metric": info.primary_metric,
        "mode": info.mode,
        "base_batch_size": info.base_batch_size,
        "generated_by": command,
        "band": band.to_dict(),
        "aggregates": [agg.to_dict() for agg in aggregate(records)],
        "speedup": speedup_rows(records),
        "time_to_target": [json.loads(t) for t in time_targets],
        "paper_diff": {"verdicts": verdict_counts, "missed_verified": missed_verified(rows)},
        "targets": [target.to_dict() for target in targets],
        "claims": [claim.to_dict() for claim in claims],
        "provenance": prov,
        "coverage": cov,
        "files": {name: relative for name, relative in REPORT_FILES.items()},
    }
    atomic_write_text(paths["summary"], _json_text(summary))
    return paths
