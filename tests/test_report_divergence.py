"""Records are strict JSON (non-finite numbers written as null, core/io.py strict_json_value)
and a diverged run carries its reason ({"step", "reason"}): the report accepts null exactly where
a diverged run may have it, rejects it in an ok run, and shows each divergence's reason.

Records are written here with the trainer's own writer (io.atomic_write_json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_report import BASE, CLAIMS, TARGETS, make_record

from reproduce.harness import report
from reproduce.harness.core.divergence import (
    APPLIED_ON_READ,
    Divergence,
    apply_on_read,
    metrics_check,
    record_divergence,
    uniform_guess_perplexity,
)
from reproduce.harness.core.io import atomic_write_json

METRIC_REASON = "final test accuracy 0.001 is worse than 0.01, far worse than chance"


def loss_reason(step: int) -> str:
    """The trainer's reason for a non-finite loss (trainer.divergence_check)."""
    return f"training loss is nan (not finite) at step {step}"


def diverged_on_loss(batch_size: int = 8192, seed: int = 0) -> dict[str, Any]:
    """As the trainer writes it: the loss curve ends with the non-finite loss, no final metrics."""
    record = make_record("linear", batch_size, seed, None, status="diverged")
    step = record["curves"]["step"][-1]
    return {**record, "divergence": {"step": step, "reason": loss_reason(step)}}


def diverged_on_final_metric(batch_size: int = 8192, seed: int = 1) -> dict[str, Any]:
    """A run that trained to the end but whose final metric is far worse than chance: final
    holds what was measured, including a null (a non-finite loss)."""
    record = make_record("linear", batch_size, seed, 0.001)
    record["final"] = {"accuracy": 0.001, "loss": float("inf")}
    step = record["total_steps"]
    return {**record, "status": "diverged", "divergence": {"step": step, "reason": METRIC_REASON}}


def write(out: Path, records: list[dict[str, Any]]) -> Path:
    for record in records:
        name = f"{record['method']}_b{record['batch_size']}_s{record['seed']}.json"
        atomic_write_json(out / "runs" / name, record)
    return out


def base_runs() -> list[dict[str, Any]]:
    return [make_record("date", BASE, seed, 0.98 + 0.001 * seed) for seed in range(3)]


def test_strict_json_diverged_records_load_and_show_their_reasons(tmp_path) -> None:
    records = [*base_runs(), diverged_on_loss(), diverged_on_final_metric()]
    out = write(tmp_path, records)
    raw = (out / "runs" / "linear_b8192_s0.json").read_text()
    assert "NaN" not in raw and json.loads(raw)["curves"]["loss"][-1] is None  # strict JSON
    loaded = {(r["seed"], r["status"]) for r in report.load_records(out) if r["batch_size"] > BASE}
    assert loaded == {(0, "diverged"), (1, "diverged")}

    paths = report.write_report(out, TARGETS, CLAIMS, band_floor=0.002)
    tables = paths["tables"].read_text()
    assert "diverged (2/2)" in tables
    assert f"- `linear`, batch 8192, seed 0 at step 1: {loss_reason(1)}" in tables
    assert f"- `linear`, batch 8192, seed 1 at step 4: {METRIC_REASON}" in tables
    diff = json.loads(paths["paper_diff_json"].read_text())
    (band_row,) = [
        row for row in diff["rows"] if row["kind"] == "band" and row["method"] == "linear"
    ]
    assert band_row["verdict"] == "missed"
    assert band_row["note"] == (
        f"2/2 runs diverged (seed 0 at step 1: {loss_reason(1)}; seed 1 at step 4: {METRIC_REASON})"
    )
    assert loss_reason(1) in paths["paper_diff"].read_text()  # the band table's note column


def test_an_old_record_without_a_reason_still_loads_and_says_so(tmp_path) -> None:
    old = make_record("linear", 8192, 0, None, status="diverged")  # Python's NaN, no divergence
    old["diverged_at_step"] = 63
    out = tmp_path
    (out / "runs").mkdir()
    (out / "runs" / "linear_b8192_s0.json").write_text(json.dumps(old))  # allow_nan: NaN
    write(out, base_runs())
    paths = report.write_report(out, TARGETS, CLAIMS, band_floor=0.002)
    assert "- `linear`, batch 8192, seed 0 at step 63: no reason recorded" in (
        paths["tables"].read_text()
    )
    assert "Diverged runs" not in report.divergence_notes(base_runs())


def set_path(record: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("record", "path", "message"),
    [
        (make_record(), ("final", "accuracy"), r"status 'ok' but final\['accuracy'\]"),
        (make_record(), ("final", "loss"), r"final\['loss'\] must be a finite number .* 'ok'"),
        (make_record(), ("curves", "loss", -1), r"curves\['loss'\]\[255\] is None"),
        (make_record(), ("curves", "lr", 0), r"curves\['lr'\]\[0\] is None"),
        (make_record(), ("evals", 0, "metrics", "loss"), r"evals\[0\]\.metrics\['loss'\]"),
        (diverged_on_loss(), ("curves", "loss", 0), r"only the last loss of a diverged run"),
    ],
)
def test_null_is_rejected_where_no_divergence_explains_it(tmp_path, record, path, message) -> None:
    out = write(tmp_path, [set_path(record, path, None)])
    with pytest.raises(ValueError, match=message) as error:
        report.load_records(out)
    assert str(error.value).startswith(str(out / "runs"))  # names the file


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"divergence": {"step": 3, "reason": "x"}}, "status 'ok' but a divergence is recorded"),
        ({"status": "diverged", "divergence": {"step": "3"}}, "divergence must be null or"),
    ],
)
def test_a_divergence_must_be_well_formed_and_only_on_a_diverged_run(
    tmp_path, change, message
) -> None:
    out = write(tmp_path, [{**make_record(), **change}])
    with pytest.raises(ValueError, match=message):
        report.load_records(out)


@pytest.mark.parametrize("base", ["all diverged", "missing"])
def test_no_ok_base_batch_run_gives_a_report_without_a_band(tmp_path, base) -> None:
    records = [make_record("date", 1024, seed, 0.97) for seed in range(2)]
    records += [diverged_on_loss(8192, 0)]
    if base == "all diverged":
        records += [diverged_on_loss(BASE, seed) for seed in range(2)]
    paths = report.write_report(write(tmp_path, records), TARGETS, CLAIMS, band_floor=0.002)
    assert f"No ok run at the base batch {BASE}" in paths["tables"].read_text()
    diff = json.loads(paths["paper_diff_json"].read_text())
    assert {row["verdict"] for row in diff["rows"] if row["kind"] == "band"} == {
        "no verified reference"
    }
    assert all(path.stat().st_size > 0 for path in paths.values())


# ------------------------------------------------- the current rule, applied to records on read

PERPLEXITY_RULE = Divergence(
    chance_limits=(uniform_guess_perplexity("perplexity", lambda m: 10_000),)
)


def perplexity_record(method: str, batch_size: int, value: float) -> dict[str, Any]:
    """An ok record of a minimized metric, as written before any final-metric rule existed."""
    return make_record(method, batch_size, 0, value, metric="perplexity", mode="min")


def test_an_old_ok_record_far_worse_than_chance_is_read_as_diverged(tmp_path) -> None:
    out = write(
        tmp_path,
        [perplexity_record("date", BASE, 460.0), perplexity_record("linear", 1024, 3.469e7)],
    )
    path = out / "runs" / "linear_b1024_s0.json"
    before = path.read_bytes()
    as_written = {r["method"]: r["status"] for r in report.load_records(out)}
    assert as_written == {"date": "ok", "linear": "ok"}  # without a rule: what the file says

    judged = {r["method"]: r for r in report.load_records(out, PERPLEXITY_RULE)}
    assert judged["date"]["status"] == "ok"
    assert judged["linear"]["status"] == "diverged"
    reason = judged["linear"]["divergence"]["reason"]
    assert reason.startswith("final test perplexity 3.469e+07 is worse than 20000")
    assert reason.endswith(APPLIED_ON_READ)
    assert judged["linear"]["divergence"]["step"] == judged["linear"]["total_steps"]

    paths = report.write_report(out, [], [], band_floor=1.0, divergence=PERPLEXITY_RULE)
    tables = paths["tables"].read_text()
    assert "diverged (1/1)" in tables and "34690000" not in tables
    assert APPLIED_ON_READ in tables
    summary = json.loads(paths["summary"].read_text())
    (cell,) = [a for a in summary["aggregates"] if a["method"] == "linear"]
    assert (cell["n_diverged"], cell["mean"]) == (1, None)
    assert path.read_bytes() == before  # the record file is never rewritten
    assert report.provenance(report.read_record_files(out, PERPLEXITY_RULE)) == report.provenance(
        report.read_record_files(out)
    )  # the hashes are of the files' bytes


def test_a_blown_up_loss_curve_in_an_ok_record_is_read_as_diverged_at_its_step() -> None:
    record = make_record("linear", 1024, 0, 0.5)
    losses = record["curves"]["loss"]
    first = losses[0]
    for index in range(4, len(losses)):  # from step 4 on, 20 x the first loss
        losses[index] = 20 * first
    rule = Divergence(loss_factor=10.0, window=3)
    found = record_divergence(rule, record)
    # The trainer checks the mean of the last 3 losses after every step: it first exceeds
    # 10 x the first loss at step 5 (mean of steps 3-5 = (l3 + 40 x l0) / 3 > 10 x l0).
    assert found is not None and found["step"] == 5
    assert "exceeds 10 x the first step's loss" in found["reason"]
    assert apply_on_read(record, rule)["status"] == "diverged"
    assert record["status"] == "ok"  # the caller's record is not changed
    assert apply_on_read(record, Divergence(loss_factor=100.0, window=3)) is record


def test_a_diverged_record_keeps_its_own_reason_and_an_ok_run_within_the_rule_stays_ok() -> None:
    diverged = diverged_on_loss()
    assert apply_on_read(diverged, PERPLEXITY_RULE) is diverged
    fine = perplexity_record("date", BASE, 460.0)
    assert apply_on_read(fine, PERPLEXITY_RULE) is fine
    assert apply_on_read(fine, None) is fine


def test_the_trainer_and_the_report_apply_the_same_rule() -> None:
    """One rule, two readers: the trainer's checks are the divergence module's functions."""
    from reproduce.harness.run import trainer
    from reproduce.harness.run.registry import experiments

    ptb = experiments()["ptb_small"]
    (chance,) = ptb.divergence.chance_limits
    limit = chance.limit(ptb.model_defaults)
    assert limit == 20_000  # twice the 10,000 words
    over = {ptb.primary_metric: 1.5 * limit}
    found = trainer.final_metric_check(ptb, over, 7)
    assert found is not None
    assert found == metrics_check(ptb.divergence, ptb.primary_metric, over, 7, ptb.model_defaults)
    assert trainer.final_metric_check(ptb, {ptb.primary_metric: 0.5 * limit}, 7) is None


def test_the_report_command_judges_committed_old_records_by_the_experiments_rule(
    tmp_path, capsys
) -> None:
    """`reproduce/report.py` on a folder of ptb_small records where one was written before the
    final-metric rule (status ok, perplexity in the millions: the committed linear x8 record as it
    was before the rule judged it) shows that run as diverged, and leaves the file as it is."""
    from reproduce.harness.cli.report import main as main_report

    committed = Path(__file__).resolve().parents[1] / "results" / "ptb_small" / "quick" / "runs"
    runs = tmp_path / "quick" / "runs"
    runs.mkdir(parents=True)
    for name in ("date_b20_s0.json", "linear_b20_s0.json"):
        (runs / name).write_bytes((committed / name).read_bytes())
    old = json.loads((committed / "linear_b160_s0.json").read_text())
    assert old["final"]["perplexity"] > 1e6
    old |= {"status": "ok", "divergence": None, "diverged_at_step": None}
    (runs / "linear_b160_s0.json").write_text(json.dumps(old))
    written = (runs / "linear_b160_s0.json").read_bytes()
    assert main_report([str(tmp_path / "quick")]) == 0
    tables = (tmp_path / "quick" / "tables.md").read_text()
    assert "- `linear`, batch 160, seed 0 at step" in tables
    assert APPLIED_ON_READ in tables
    diff = json.loads((tmp_path / "quick" / "paper_diff.json").read_text())
    assert all(
        row["n_diverged"] == 1
        for row in diff["rows"]
        if row["kind"] == "band" and row["method"] == "linear"
    )
    assert (runs / "linear_b160_s0.json").read_bytes() == written
