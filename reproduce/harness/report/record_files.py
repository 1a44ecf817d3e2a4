"""Reading and validating run records: `<out_dir>/runs/*.json`, schema version 1 (documented in
results/README.md). A record that is not valid JSON, lacks a field the report reads or has the
wrong type is an error naming its file: records are written atomically, so a bad one is real."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.divergence import Divergence, apply_on_read
from ..core.records import SCHEMA_VERSION

RUN_STATUSES = ("ok", "diverged")

# Field -> accepted JSON types. Only the fields this module reads are required; a record missing
# one of them (or with the wrong type) is a real error, because records are written atomically.
NUMBER = (int, float)
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
    "seconds_to_target": (*NUMBER, type(None)),
    "total_steps": (int,),
    "steps_per_epoch": NUMBER,
    "recipe": (dict,),
    "env": (dict,),
    "curves": (dict,),
    "evals": (list,),
}
_CURVE_KEYS = ("step", "lr", "loss")


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    # bool is a subclass of int in Python but never a valid count, size or seed.
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def is_finite_number(value: Any) -> bool:
    """A JSON number that is neither NaN nor infinite (bool is not a number here)."""
    return _is_type(value, NUMBER) and math.isfinite(value)


def _is_measurement(value: Any, diverged: bool) -> bool:
    """A finite number; in a diverged run also null or a non-finite number: records are strict
    JSON with NaN/inf written as null (harness/io.py strict_json_value), and older records kept
    Python's NaN. Such a value is what made the run diverge, never a result."""
    if is_finite_number(value):
        return True
    return diverged and (value is None or _is_type(value, NUMBER))


def divergence_text(record: Mapping[str, Any]) -> str:
    """Why a diverged run diverged, as recorded: 'seed 0 at step 37: training loss is nan ...'.

    The record's ``divergence`` ({"step", "reason"}, written by the trainer) gives both; a record
    made before the reason was recorded says so (with its ``diverged_at_step`` if it has one).
    """
    divergence = record.get("divergence") or {}
    step = divergence.get("step", record.get("diverged_at_step"))
    reason = divergence.get("reason") or "no reason recorded"
    at = f" at step {step}" if step is not None else ""
    return f"seed {record['seed']}{at}: {reason}"


@dataclass(frozen=True)
class RecordFile:
    """One run record with the file it came from and the sha256 of that file's bytes."""

    path: Path
    sha256: str
    record: dict[str, Any]


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
    _check_divergence(record, where)
    _check_measurements(record, where)
    try:
        proxy_of(record)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    target = record["time_to_target"]
    if target is not None and not (
        isinstance(target.get("metric"), str)
        and is_finite_number(target.get("value"))
        and target.get("mode") in ("min", "max")
    ):
        raise ValueError(f"{where}: time_to_target needs metric, value and mode, got {target!r}")


def _check_divergence(record: Mapping[str, Any], where: str) -> None:
    """``divergence`` is optional (older records lack it); when set, only on a diverged run."""
    divergence = record.get("divergence")
    if divergence is None:
        return
    if not (
        isinstance(divergence, dict)
        and _is_type(divergence.get("step"), (int,))
        and isinstance(divergence.get("reason"), str)
    ):
        raise ValueError(
            f"{where}: divergence must be null or {{'step': int, 'reason': str}}, "
            f"got {divergence!r}"
        )
    if record["status"] != "diverged":
        raise ValueError(
            f"{where}: status {record['status']!r} but a divergence is recorded: {divergence!r}"
        )


def _check_measurements(record: Mapping[str, Any], where: str) -> None:
    """Final metrics, curves and evaluations are finite numbers in an ok run. In a diverged run
    the final metrics and evaluation metrics may be null (or non-finite), and so may the last
    training loss (the step that diverged); every earlier loss was finite, or training would
    have stopped there."""
    diverged = record["status"] == "diverged"
    metric = record["primary_metric"]
    if not diverged and not is_finite_number(record["final"].get(metric)):
        raise ValueError(
            f"{where}: status 'ok' but final[{metric!r}] is not a finite number: "
            f"{record['final'].get(metric)!r}"
        )
    for name, value in record["final"].items():
        if not _is_measurement(value, diverged):
            raise ValueError(
                f"{where}: final[{name!r}] must be a finite number in a run with status "
                f"{record['status']!r}, got {value!r}"
            )
    curves = record["curves"]
    for key in _CURVE_KEYS:
        if not isinstance(curves.get(key), list):
            raise ValueError(f"{where}: curves[{key!r}] must be a list")
    lengths = {len(curves[key]) for key in _CURVE_KEYS}
    if len(lengths) != 1:
        raise ValueError(f"{where}: curves step/lr/loss have different lengths {sorted(lengths)}")
    for key in _CURVE_KEYS:
        values = curves[key]
        for index, value in enumerate(values):
            may_be_null = diverged and key == "loss" and index == len(values) - 1
            if not _is_measurement(value, may_be_null):
                raise ValueError(
                    f"{where}: curves[{key!r}][{index}] is {value!r}, not a finite number (only "
                    "the last loss of a diverged run may be null)"
                )
    for index, entry in enumerate(record["evals"]):
        if not (
            isinstance(entry, dict)
            and is_finite_number(entry.get("epoch"))
            and isinstance(entry.get("metrics"), dict)
        ):
            raise ValueError(f"{where}: evals[{index}] needs a numeric 'epoch' and 'metrics' dict")
        for name, value in entry["metrics"].items():
            if not _is_measurement(value, diverged):
                raise ValueError(
                    f"{where}: evals[{index}].metrics[{name!r}] must be a finite number in a run "
                    f"with status {record['status']!r}, got {value!r}"
                )


def read_record_files(
    out_dir: str | os.PathLike[str], divergence: Divergence | None = None
) -> list[RecordFile]:
    """Every `<out_dir>/runs/*.json` record with its path and sha256, validated, sorted by name.

    With `divergence` (the experiment's current rule), each record is judged by it on read
    (divergence.apply_on_read): an "ok" record that the rule finds diverged, e.g. one written
    before the rule existed, is returned with status "diverged" and a reason saying the rule was
    applied on read. The file is never rewritten, and its sha256 is that of its bytes.

    Raises ValueError whose message starts with the offending file: unreadable, not UTF-8, not
    JSON (e.g. truncated), not schema version 1, or a second record of the same run.
    """
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
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise ValueError(f"{path}: cannot be read ({error.strerror})") from error
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{path}: not a run record: not UTF-8 text (byte {error.start} is "
                f"0x{raw[error.start]:02x})"
            ) from error
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            where = f"(line {error.lineno}, column {error.colno})"
            # A record is one JSON object: one that does not end with "}" was cut off.
            truncated = not text.rstrip().endswith("}")
            cut = "; the file does not end with '}', so it looks truncated" if truncated else ""
            raise ValueError(f"{path}: not valid JSON: {error.msg} {where}{cut}") from error
        validate_record(record, str(path))
        key = (record["method"], record["batch_size"], record["seed"])
        if key in seen:
            raise ValueError(
                f"{path}: duplicate run (method={key[0]}, batch={key[1]}, seed={key[2]}), "
                f"already in {seen[key]}"
            )
        seen[key] = path
        judged = apply_on_read(record, divergence)
        files.append(RecordFile(path, hashlib.sha256(raw).hexdigest(), judged))
    return files


def load_records(
    out_dir: str | os.PathLike[str], divergence: Divergence | None = None
) -> list[dict[str, Any]]:
    """Read and validate every `<out_dir>/runs/*.json` record, sorted by file name, each judged
    by the `divergence` rule if one is given (see read_record_files).

    Skips nothing silently: a file that is not valid JSON, lacks a required field or has the wrong
    schema version raises ValueError naming the file. `*.tmp` files (unfinished atomic writes) are
    ignored. Two files describing the same (method, batch_size, seed) are an error too.
    """
    return [item.record for item in read_record_files(out_dir, divergence)]


def proxy_of(record: Mapping[str, Any]) -> dict[str, str] | None:
    """A record's ``proxy`` field ({"label", "setting"}: the run is of a proxy preset, a small
    stand-in for the paper's setting), or None (older records lack the field)."""
    proxy = record.get("proxy")
    if proxy is None:
        return None
    if not (isinstance(proxy, dict) and all(isinstance(proxy.get(k), str) for k in PROXY_KEYS)):
        raise ValueError(f"proxy must be null or {{'label': str, 'setting': str}}, got {proxy!r}")
    return {key: proxy[key] for key in PROXY_KEYS}


PROXY_KEYS = ("label", "setting")


@dataclass(frozen=True)
class SweepInfo:
    """What every record of one sweep must agree on. ``proxy``: the records' proxy field (a
    small stand-in for the paper's setting, with the label every verdict is shown with)."""

    experiment: str
    preset: str
    primary_metric: str
    mode: str
    base_batch_size: int
    proxy: dict[str, str] | None = None

    @property
    def proxy_label(self) -> str | None:
        return self.proxy["label"] if self.proxy else None


def sweep_info(records: Sequence[Mapping[str, Any]]) -> SweepInfo:
    """The experiment, preset, primary metric, mode, base batch and proxy field shared by all
    records.

    Raises ValueError when there are no records or they disagree (a report must not mix sweeps).
    """
    if not records:
        raise ValueError("no run records")
    values: dict[str, Any] = {}
    for name in ("experiment", "preset", "primary_metric", "mode", "base_batch_size"):
        found = sorted({record[name] for record in records}, key=str)
        if len(found) != 1:
            raise ValueError(f"records disagree on {name}: {found}")
        values[name] = found[0]
    proxies = {json.dumps(proxy_of(record), sort_keys=True) for record in records}
    if len(proxies) != 1:
        raise ValueError(f"records disagree on proxy: {sorted(proxies)}")
    return SweepInfo(**values, proxy=json.loads(proxies.pop()))
