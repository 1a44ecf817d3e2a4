"""Tests of the report generator (reproduce/harness/report/) and targets (targets.py).

Records here are synthetic test inputs built by `make_record`, which fills schema version 1.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from reproduce.harness import report
from reproduce.harness.core.io import atomic_write_text
from reproduce.harness.core.targets import TARGET_STATUSES, Claim, Target
from reproduce.harness.report import (
    aggregate,
    load_records,
    metric_table,
    paper_diff,
    speedup_rows,
    speedup_table,
    tolerance_band,
    write_report,
)

BASE = 128
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_record(
    method: str = "date",
    batch_size: int = BASE,
    seed: int = 0,
    value: float | None = 0.98,
    *,
    status: str = "ok",
    metric: str = "accuracy",
    mode: str = "max",
    steps_to_target: int | None = None,
    seconds_to_target: float | None = None,
    epochs: int = 2,
    train_size: int = 16384,
    env: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A schema-1 record; training curves follow a sqrt-scaled warmup schedule."""
    k = batch_size / BASE
    steps_per_epoch = train_size / batch_size
    total_steps = int(epochs * steps_per_epoch)
    peak = 0.1 * math.sqrt(k)
    warmup = max(1, int(0.5 * k * steps_per_epoch))
    steps = list(range(total_steps))
    lr = [peak * min(1.0, (s + 1) / warmup) for s in steps]
    loss = [2.0 / (1 + 0.1 * s) + 0.01 * (s % 3) for s in steps]
    if status == "diverged":
        cut = max(1, total_steps // 2)
        steps, lr, loss = steps[:cut], lr[:cut], [*loss[: cut - 1], float("nan")]
    final = {} if value is None else {metric: value, "loss": 0.1}
    evals = [
        {
            "step": int(e * steps_per_epoch),
            "epoch": float(e),
            "seconds": 1.5 * e,
            "split": "valid",
            "metrics": {metric: (value or 0.5) * e / epochs, "loss": 1.0 / e},
        }
        for e in range(1, epochs + 1)
    ]
    return {
        "schema_version": 1,
        "experiment": "toy",
        "preset": report.TARGET_PRESET,  # where targets are judged
        "method": method,
        "batch_size": batch_size,
        "base_batch_size": BASE,
        "seed": seed,
        "status": status,
        "primary_metric": metric,
        "mode": mode,
        "final": final,
        "time_to_target": {"metric": metric, "value": 0.9, "mode": mode},
        "steps_to_target": steps_to_target,
        "seconds_to_target": seconds_to_target,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "model_parameters": 1234,
        "micro_batch_size": batch_size,
        "accumulation_steps": 1,
        "world_size": 1,
        "recipe": {
            "batch_size": batch_size,
            "lr": peak,
            "epochs": epochs,
            "warmup_epochs": 0.5 * k,
        },
        "base_recipe": {"batch_size": BASE, "lr": 0.1, "epochs": epochs, "warmup_epochs": 0.5},
        "env": env
        or {
            "python": "3.11.7",
            "torch": "2.13.0+cpu",
            "device": "cpu",
            "device_name": "Test CPU 9000",
            "cpu_count": 2,
            "git_commit": "c0ffee1234",
            "git_dirty": False,
            "date": f"2026-01-0{seed + 1}T00:00:00Z",
            "command": "python reproduce/run.py toy --preset full",
            "hostname": "test",
        },
        "curves": {"step": steps, "lr": lr, "loss": loss},
        "evals": evals,
        "wall_seconds": 10.0,
        "train_seconds": 9.0,
    }


def write_records(out_dir: Path, records: list[dict[str, Any]]) -> Path:
    runs = out_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for record in records:
        name = f"{record['method']}_b{record['batch_size']}_s{record['seed']}.json"
        (runs / name).write_text(json.dumps(record))
    return out_dir


def sweep() -> list[dict[str, Any]]:
    """Two methods, three batches, three seeds; linear diverges at the largest batch."""
    records = []
    base_values = [0.980, 0.982, 0.984]
    for method in ("date", "linear"):
        for seed, base_value in enumerate(base_values):
            records.append(
                make_record(
                    method, BASE, seed, base_value, steps_to_target=800, seconds_to_target=40.0
                )
            )
            records.append(
                make_record(
                    method,
                    1024,
                    seed,
                    base_value - (0.001 if method == "date" else 0.05),
                    steps_to_target=100,
                    seconds_to_target=8.0,
                )
            )
    for seed in range(3):
        records.append(make_record("date", 8192, seed, 0.978 + 0.001 * seed))
        records.append(make_record("linear", 8192, seed, None, status="diverged"))
    return records


# ---------------------------------------------------------------------------------- targets


def test_target_validation_and_round_trip() -> None:
    target = Target("accuracy", 0.98, "max", 0.01, "paper Table 1", "paper table", 1024, "n")
    assert Target.from_dict(target.to_dict()) == target
    assert target.verified
    assert target.met(0.971) and not target.met(0.969)
    assert target.met_outright(0.98) and not target.met_outright(0.979)
    low = Target("perplexity", 114.5, "min", 2.0, "Zaremba 2014", "external reference")
    assert low.met(116.5) and not low.met(116.6) and low.met_outright(114.0)
    with pytest.raises(ValueError, match="mode"):
        Target("accuracy", 0.98, "higher", 0.0, "x", "paper table")
    with pytest.raises(ValueError, match="tolerance"):
        Target("accuracy", 0.98, "max", -0.1, "x", "paper table")
    with pytest.raises(ValueError, match="status"):
        Target("accuracy", 0.98, "max", 0.0, "x", "from memory")
    with pytest.raises(ValueError, match="unknown keys"):
        Target.from_dict({**target.to_dict(), "tolerence": 1})
    unknown = Target("accuracy", None, "max", 0.0, "paper Table 2", "paper table")
    assert not unknown.verified
    with pytest.raises(ValueError):
        unknown.met(0.5)
    assert not Target("accuracy", 0.9, "max", 0.0, "x", "unverified").verified
    assert "suite baseline" in TARGET_STATUSES
    claim = Claim("x64", "arXiv abstract", "paper abstract", "accuracy", "max", 64, "date")
    assert Claim.from_dict(claim.to_dict()) == claim
    with pytest.raises(ValueError, match="scale_factor"):
        Claim("x", "y", "paper abstract", "accuracy", "max", 0, "date")


# ---------------------------------------------------------------------------- aggregation


def test_aggregate_mean_and_sample_std() -> None:
    records = [make_record("date", 1024, s, v) for s, v in enumerate([0.90, 0.92, 0.94])]
    records += [make_record("date", BASE, 0, 0.95)]
    rows = {(a.method, a.batch_size): a for a in aggregate(records)}
    cell = rows[("date", 1024)]
    assert cell.n == 3 and cell.n_diverged == 0 and cell.k == 8
    assert cell.mean == pytest.approx(0.92)
    assert cell.std == pytest.approx(0.02)  # ddof=1: sqrt((0.02^2 + 0 + 0.02^2) / 2)
    single = rows[("date", BASE)]
    assert single.mean == pytest.approx(0.95) and single.std is None


def test_aggregate_excludes_diverged_runs_from_mean() -> None:
    records = [
        make_record("linear", 1024, 0, 0.5),
        make_record("linear", 1024, 1, 0.7),
        make_record("linear", 1024, 2, None, status="diverged"),
    ]
    (cell,) = aggregate(records)
    assert (cell.n, cell.n_diverged, cell.n_values) == (3, 1, 2)
    assert cell.mean == pytest.approx(0.6)


def test_band_is_max_of_two_std_and_floor_and_dedupes_seeds() -> None:
    # Same seeds run by two methods at the base batch count once each.
    values = [0.980, 0.982, 0.984]
    records = [make_record(m, BASE, s, v) for m in ("date", "none") for s, v in enumerate(values)]
    wide = tolerance_band(records, BASE, floor=0.001)
    assert wide.n_seeds == 3 and wide.seeds == (0, 1, 2)
    assert wide.std == pytest.approx(0.002)
    assert wide.half_width == pytest.approx(0.004) and wide.rule == "2 x std"
    mean, band = tolerance_band(records, BASE, floor=0.01)
    assert mean == pytest.approx(0.982) and band == pytest.approx(0.01)
    assert "max(2 x std, floor)" in wide.describe() and "3 ok seed(s)" in wide.describe()
    one = tolerance_band([make_record("date", BASE, 0, 0.9)], BASE, floor=0.005)
    assert one.std is None and one.half_width == 0.005
    with pytest.raises(ValueError):
        tolerance_band(records, BASE, floor=-1)


# ------------------------------------------------------------------------------- verdicts


def _rows_by_source(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["source"]: row for row in rows if row["kind"] == "target"}


def test_verdicts_for_a_max_metric() -> None:
    records = sweep()
    band = tolerance_band(records, BASE, 0.002)
    targets = [
        Target("accuracy", 0.98, "max", 0.01, "ok-outright", "paper table", 1024, method="date"),
        Target("accuracy", 0.985, "max", 0.01, "ok-tolerance", "paper table", 1024, method="date"),
        Target("accuracy", 0.999, "max", 0.001, "missed", "paper table", 1024, method="date"),
        Target("accuracy", 0.5, "max", 0.0, "unverified", "unverified", 1024, method="date"),
        Target("accuracy", None, "max", 0.0, "unknown", "paper table", 1024, method="date"),
        Target("accuracy", 0.98, "max", 0.0, "base", "external reference"),
        Target("accuracy", 0.9, "max", 0.0, "not-run", "paper table", 4096, method="date"),
        Target("accuracy", 0.9, "max", 0.0, "diverged", "paper table", 8192, method="linear"),
    ]
    rows = _rows_by_source(paper_diff(records, targets, [], band))
    assert rows["ok-outright"]["verdict"] == "reproduced"
    assert rows["ok-outright"]["ours"] == pytest.approx(0.981)
    assert rows["ok-outright"]["delta"] == pytest.approx(0.001)
    assert rows["ok-tolerance"]["verdict"] == "within tolerance"
    assert rows["missed"]["verdict"] == "missed"
    assert rows["unverified"]["verdict"] == "no verified reference"
    assert rows["unverified"]["ours"] == pytest.approx(0.981)  # ours is still shown
    assert rows["unknown"]["verdict"] == "no verified reference"
    assert rows["unknown"]["delta"] is None
    assert rows["base"]["verdict"] == "reproduced" and rows["base"]["n"] == 3  # pooled by seed
    assert rows["not-run"]["verdict"] == "not run"
    assert rows["diverged"]["verdict"] == "missed" and rows["diverged"]["ours"] is None
    markdown = report.paper_diff_markdown(paper_diff(records, targets, [], band), band)
    assert "unknown" in markdown and "diverged (3/3)" in markdown


def test_verdicts_for_a_min_metric() -> None:
    records = [
        make_record("date", BASE, s, v, metric="perplexity", mode="min")
        for s, v in enumerate([100.0, 102.0])
    ]
    band = tolerance_band(records, BASE, 1.0)
    targets = [
        Target("perplexity", 101.5, "min", 1.0, "outright", "external reference"),
        Target("perplexity", 100.5, "min", 1.0, "tolerance", "external reference"),
        Target("perplexity", 99.0, "min", 1.0, "missed", "external reference"),
    ]
    rows = _rows_by_source(paper_diff(records, targets, [], band))
    assert rows["outright"]["verdict"] == "reproduced"
    assert rows["tolerance"]["verdict"] == "within tolerance"
    assert rows["missed"]["verdict"] == "missed"
    with pytest.raises(ValueError, match="contradicts"):
        paper_diff(records, [Target("perplexity", 1.0, "max", 0, "x", "paper table")], [], band)


def test_claim_rows_and_band_rows() -> None:
    records = sweep()
    band = tolerance_band(records, BASE, 0.002)  # std 0.002 -> band 0.004 around 0.982
    claims = [
        Claim("x8 without loss", "abstract", "paper abstract", "accuracy", "max", 8, "date"),
        Claim("x8 linear", "abstract", "paper abstract", "accuracy", "max", 8, "linear"),
        Claim("x64 without loss", "abstract", "paper abstract", "accuracy", "max", 64, "date"),
        Claim("x128 without loss", "abstract", "paper abstract", "accuracy", "max", 128, "date"),
        Claim("x64 quoted", "third party", "unverified", "accuracy", "max", 64, "date"),
    ]
    rows = paper_diff(records, [], claims, band)
    by_text = {row["what"]: row for row in rows if row["kind"] == "claim"}
    assert by_text["x8 without loss"]["verdict"] == "within tolerance"  # 0.981 vs 0.982 ± 0.004
    assert by_text["x8 without loss"]["target"] == pytest.approx(0.982)
    assert by_text["x8 without loss"]["tolerance"] == pytest.approx(0.004)
    assert by_text["x8 linear"]["verdict"] == "missed"
    assert by_text["x64 without loss"]["verdict"] == "within tolerance"  # batch 8192
    assert by_text["x128 without loss"]["verdict"] == "not run"
    assert by_text["x64 quoted"]["verdict"] == "no verified reference"
    band_rows = {row["method"]: row for row in rows if row["kind"] == "band"}
    assert band_rows["date"]["batch_size"] == 8192
    assert band_rows["date"]["verdict"] == "within tolerance"
    assert band_rows["linear"]["verdict"] == "missed"
    assert report.missed_verified(rows) == 1  # band rows are informative only


def test_targets_are_not_judged_on_a_reduced_preset_but_claims_are() -> None:
    records = [{**record, "preset": "quick"} for record in sweep()]
    band = tolerance_band(records, BASE, 0.002)
    targets = [
        Target("accuracy", 0.999, "max", 0.001, "full-recipe", "external reference"),
        Target("accuracy", 0.98, "max", 0.0, "at-1024", "paper table", 1024, method="date"),
    ]
    claims = [Claim("x8 linear", "abstract", "paper abstract", "accuracy", "max", 8, "linear")]
    rows = paper_diff(records, targets, claims, band)
    target_rows = [row for row in rows if row["kind"] == "target"]
    assert [row["verdict"] for row in target_rows] == ["not applicable"] * 2
    assert target_rows[0]["ours"] == pytest.approx(0.982)  # still shown beside the reference
    assert "reduced 'quick' preset" in target_rows[0]["note"]
    claim_row = next(row for row in rows if row["kind"] == "claim")
    assert claim_row["verdict"] == "missed"  # relative to its own base batch: judged
    assert report.missed_verified(rows) == 1
    # the same records as the full preset: the unreachable target is judged and missed
    full_rows = paper_diff(sweep(), targets, claims, tolerance_band(sweep(), BASE, 0.002))
    assert next(r["verdict"] for r in full_rows if r["kind"] == "target") == "missed"


# -------------------------------------------------------------------------------- tables


def test_metric_table_shows_divergence() -> None:
    records = sweep()
    records.append(make_record("date", 4096, 0, 0.97))
    records.append(make_record("date", 4096, 1, None, status="diverged"))
    table = metric_table(records)
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "diverged (3/3)" in lines["8192"]
    assert "0.9700 (n=1); diverged (1/2)" in lines["4096"]
    assert "not run" in lines["4096"]  # linear was not run at 4096
    assert "0.9820 ± 0.0020 (n=3)" in lines["128"]


def test_speedup_ratios() -> None:
    records = sweep()
    rows = {(r["method"], r["batch_size"]): r for r in speedup_rows(records)}
    assert rows[("date", 1024)]["step_ratio"] == pytest.approx(8.0)
    assert rows[("date", 1024)]["seconds_ratio"] == pytest.approx(5.0)
    assert rows[("date", BASE)]["step_ratio"] == pytest.approx(1.0)
    assert rows[("date", 8192)]["steps_to_target"] is None
    table = speedup_table(records)
    assert "8.00x" in table and "not reached" in table


# ----------------------------------------------------------------------------- loading


def test_corrupt_json_raises_naming_the_file(tmp_path: Path) -> None:
    write_records(tmp_path, [make_record()])
    bad = tmp_path / "runs" / "date_b256_s0.json"
    bad.write_text('{"schema_version": 1, "method": ')
    with pytest.raises(ValueError, match=r"date_b256_s0\.json"):
        load_records(tmp_path)


def test_missing_field_raises_naming_the_file(tmp_path: Path) -> None:
    record = make_record()
    del record["final"]
    write_records(tmp_path, [record])
    with pytest.raises(ValueError, match=r"date_b128_s0\.json.*final"):
        load_records(tmp_path)


def test_ok_run_without_primary_metric_is_an_error(tmp_path: Path) -> None:
    record = make_record()
    record["final"] = {}
    write_records(tmp_path, [record])
    with pytest.raises(ValueError, match="status 'ok'"):
        load_records(tmp_path)


def test_tmp_files_are_ignored(tmp_path: Path) -> None:
    write_records(tmp_path, [make_record()])
    (tmp_path / "runs" / "date_b256_s0.json.tmp").write_text("{half")
    (tmp_path / "runs" / ".date_b512_s0.json.x1.tmp").write_text("{half")
    records = load_records(tmp_path)
    assert len(records) == 1 and records[0]["batch_size"] == BASE


def test_duplicate_runs_are_an_error(tmp_path: Path) -> None:
    runs = write_records(tmp_path, [make_record()]) / "runs"
    (runs / "copy.json").write_text(json.dumps(make_record()))
    with pytest.raises(ValueError, match="duplicate"):
        load_records(tmp_path)


# -------------------------------------------------------------------------------- report


TARGETS = [
    Target("accuracy", 0.98, "max", 0.005, "paper Table 1", "paper table", 1024, method="date"),
    Target("accuracy", None, "max", 0.0, "paper Table 2 (not transcribed)", "paper table", 8192),
    Target("accuracy", 0.99, "max", 0.0, "a | quoted number", "unverified"),
]
CLAIMS = [Claim("batch x8 without loss", "arXiv", "paper abstract", "accuracy", "max", 8, "date")]


def _check_outputs(paths: dict[str, Path]) -> None:
    assert set(paths) == set(report.REPORT_FILES)
    for name, path in paths.items():
        assert path.is_file() and path.stat().st_size > 0, name
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG_SIGNATURE, name
    json.loads(paths["summary"].read_text())
    diff = json.loads(paths["paper_diff_json"].read_text())
    assert "missed_verified" in diff and isinstance(diff["rows"], list)
    leftovers = [p for p in paths["tables"].parent.rglob("*.tmp")]
    assert not leftovers


def test_write_report_produces_everything_deterministically(tmp_path: Path) -> None:
    out = write_records(tmp_path / "toy" / "full", sweep())
    paths = write_report(out, TARGETS, CLAIMS, band_floor=0.002)
    _check_outputs(paths)
    first = {name: paths[name].read_text() for name in paths if paths[name].suffix != ".png"}
    tables = first["tables"]
    assert "c0ffee1234 (clean)" in tables and "Test CPU 9000" in tables
    assert "2026-01-01T00:00:00Z to 2026-01-03T00:00:00Z" in tables
    assert "max(2 x std, floor)" in tables
    assert "a \\| quoted number" in first["paper_diff"]
    diff = json.loads(first["paper_diff_json"])
    assert diff["missed_verified"] == 0
    summary = json.loads(first["summary"])
    assert summary["provenance"]["n_records"] == len(sweep())
    # the cost line: every toy record is its own 10 s run (none shared)
    assert summary["provenance"]["trained_runs"] == len(sweep())
    assert summary["provenance"]["wall_seconds_total"] == 10.0 * len(sweep())
    paths = write_report(out, TARGETS, CLAIMS, band_floor=0.002)
    second = {name: paths[name].read_text() for name in first}
    assert first == second


@pytest.mark.parametrize(
    "case",
    ["one_method", "single_batch", "all_diverged", "missing_seeds"],
)
def test_write_report_edge_cases(tmp_path: Path, case: str) -> None:
    if case == "one_method":
        records = [r for r in sweep() if r["method"] == "date"]
    elif case == "single_batch":
        records = [make_record("date", BASE, s, 0.98 + 0.001 * s) for s in range(2)]
    elif case == "all_diverged":
        records = [make_record("linear", b, 0, None, status="diverged") for b in (BASE, 1024)]
    else:
        records = [r for r in sweep() if not (r["batch_size"] == 1024 and r["seed"] != 2)]
    out = write_records(tmp_path, records)
    paths = write_report(out, TARGETS, CLAIMS, band_floor=0.002)
    _check_outputs(paths)
    diff = json.loads(paths["paper_diff_json"].read_text())
    verdicts = {row["verdict"] for row in diff["rows"]}
    assert verdicts <= set(report.VERDICTS)
    if case == "all_diverged":
        assert "diverged (1/1)" in paths["tables"].read_text()


def test_claims_without_a_base_batch_have_no_reference() -> None:
    records = [make_record("date", 1024, s, 0.97) for s in range(2)]
    band = tolerance_band(records, BASE, 0.002)
    assert band.mean is None and "No ok run at the base batch" in band.describe()
    rows = paper_diff(records, [], CLAIMS, band)
    (claim,) = [row for row in rows if row["kind"] == "claim"]
    assert claim["verdict"] == "no verified reference" and claim["ours"] == pytest.approx(0.97)
    (band_row,) = [row for row in rows if row["kind"] == "band"]
    assert band_row["verdict"] == "no verified reference"


def test_write_report_rejects_an_empty_sweep(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match="no run records"):
        write_report(tmp_path, [], [], 0.01)


def test_atomic_write_keeps_old_file_when_replace_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tables.md"
    atomic_write_text(path, "old\n")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tables.md"]


# --------------------------------------------------------------------------------- coverage


class _Recipe:
    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        return dict(self.fields)


class _Planned:
    """A planned run as report.coverage sees it (sweep.PlannedRun has these attributes)."""

    def __init__(self, method: str, batch_size: int, seed: int = 0, same_run_as: str | None = None):
        self.method, self.batch_size, self.seed, self.same_run_as = (
            method,
            batch_size,
            seed,
            same_run_as,
        )
        recipe = make_record(method, batch_size, seed)["recipe"]  # sqrt lr, warmup x k
        if method == "linear" and batch_size != BASE:  # lr x k, warmup epochs unchanged
            recipe = {**recipe, "lr": 0.1 * batch_size / BASE, "warmup_epochs": 0.5}
        self.recipe = _Recipe(recipe)
        self.name = f"{method}_b{batch_size}_s{seed}.json"

    def record(self, value: float | None = 0.98, **kwargs: Any) -> dict[str, Any]:
        """A record of this planned run (its recipe)."""
        made = make_record(self.method, self.batch_size, self.seed, value, **kwargs)
        return {**made, "recipe": self.recipe.to_dict()}


def _plan() -> list[_Planned]:
    """date and linear at 128 (shared, k = 1), 1024 and 8192."""
    return [
        _Planned("date", BASE),
        _Planned("linear", BASE, same_run_as="date_b128_s0.json"),
        *(_Planned(method, batch) for batch in (1024, 8192) for method in ("date", "linear")),
    ]


def test_coverage_counts_missing_runs_and_estimates_their_training_time(tmp_path: Path) -> None:
    fast = _Planned("date", BASE).record()
    slow = _Planned("date", 1024).record()
    fast["train_seconds"], slow["train_seconds"] = 600.0, 1200.0
    broken = _Planned("linear", 8192).record(status="diverged", value=None)
    broken["train_seconds"] = 5.0  # diverged runs stop early: not a measure of a run's cost
    write_records(tmp_path, [fast, slow, broken])
    cov = report.coverage(report.read_record_files(tmp_path), _plan(), "full")
    # linear at 128 is date's k = 1 run (same recipe and seed): covered without its own record
    assert (cov["planned"], cov["recorded"]) == (6, 4)
    assert cov["missing_by_method"] == {"linear": ["1024"], "date": ["8192"]}
    assert cov["missing_trained"] == 2
    assert cov["mean_train_seconds"] == 900.0 and cov["mean_train_seconds_n"] == 2
    assert cov["estimated_missing_train_hours"] == pytest.approx(2 * 900 / 3600)
    text = report.coverage_markdown(cov, ["Test CPU 9000"])
    assert "4 of the 6 planned runs" in text
    assert "`linear` at 1024; `date` at 8192" in text
    assert "about 0.5 h on Test CPU 9000" in text
    # three seeds planned at the base batch, one recorded: the missing seeds are named
    plan = [_Planned("date", BASE, seed) for seed in range(3)]
    cov = report.coverage(report.read_record_files(tmp_path), plan, "full")
    assert cov["missing_by_method"] == {"date": ["128 (seeds 1, 2)"]}


def test_coverage_does_not_count_a_record_made_with_another_recipe(tmp_path: Path) -> None:
    tuned = make_record("date", BASE)
    tuned["recipe"]["lr"] = 0.4  # e.g. a tuning point: same file name, not the planned run
    write_records(tmp_path, [tuned])
    cov = report.coverage(report.read_record_files(tmp_path), _plan(), "full")
    assert cov["recorded"] == 0 and cov["outside_plan"] == ["date_b128_s0.json"]
    assert cov["mean_train_seconds"] is None
    text = report.coverage_markdown(cov)
    assert "0 of the 6 planned runs" in text and "1 record(s) are outside the plan" in text
    assert " h" not in text.split("outside")[0].split("Not recorded")[1]  # no estimate without data


def test_write_report_with_a_plan_writes_a_coverage_section(tmp_path: Path) -> None:
    write_records(tmp_path, [make_record("date", BASE)])
    write_report(tmp_path, [], [], 0.0)
    assert "## Coverage" not in (tmp_path / "tables.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["coverage"] is None
    write_report(tmp_path, [], [], 0.0, plan=_plan())
    assert "**Partial sweep: 2 of the 6 planned runs" in (tmp_path / "tables.md").read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["coverage"]["missing_trained"] == 4  # linear@128 is date@128's run


def test_metric_axes_go_log_only_when_values_span_orders_of_magnitude() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    def scale(values: list[float]) -> str:
        axis = Figure().add_subplot()
        report.plots.log_axis_if_wide(axis, values)
        return axis.get_yscale()

    assert scale([0.1, 0.98]) == "linear"  # accuracies
    assert scale([115.0, 900.0]) == "linear"  # healthy perplexities
    assert scale([115.0, 3.4e7, float("inf")]) == "log"  # a blown-up run among healthy ones
    assert scale([-1.0, 500.0]) == "linear"  # a log axis cannot show non-positive values
    assert scale([]) == "linear"


def test_provenance_counts_a_shared_base_run_once_in_the_cost(tmp_path: Path) -> None:
    date = make_record("date", BASE, 0, 0.98)
    shared = {**make_record("linear", BASE, 0, 0.98), "same_run_as": "date_b128_s0.json"}
    slow = {**make_record("linear", 1024, 0, 0.97), "wall_seconds": 50.0}
    out = write_records(tmp_path / "toy" / "full", [date, shared, slow])
    prov = report.provenance(report.read_record_files(out))
    assert prov["n_records"] == 3
    assert prov["trained_runs"] == 2
    assert prov["wall_seconds_total"] == 60.0
