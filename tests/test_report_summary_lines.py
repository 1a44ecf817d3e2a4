"""report.summary_lines: the end-of-job summary of a results folder (largest batch keeping the
base-batch band per method, each claim's verdict in words, the report files' paths)."""

from __future__ import annotations

import pytest
from test_report import BASE, CLAIMS, TARGETS, make_record, sweep, write_records
from test_report_divergence import diverged_on_loss, loss_reason, write

from reproduce.harness import report
from reproduce.harness.core.targets import Claim

X64 = Claim("batch x64 without loss", "abstract", "paper abstract", "accuracy", "max", 64, "date")


def file_lines(out) -> list[str]:
    return [
        f"report: {out}/tables.md, {out}/paper_diff.md, {out}/paper_diff.json, "
        f"{out}/speedup.md, {out}/summary.json",
        f"plots: {out}/plots/metric_vs_batch.png, {out}/plots/lr_schedules.png, "
        f"{out}/plots/learning_curves.png",
    ]


def test_a_full_sweep_in_a_few_lines(tmp_path) -> None:
    """sweep(): base 0.980/0.982/0.984 (band 0.982 ± 0.004); date 0.981 at x8 and 0.979 at x64;
    linear 0.932 at x8 and diverged at x64."""
    out = write_records(tmp_path, sweep())
    report.write_report(out, TARGETS, [*CLAIMS, X64], band_floor=0.002)
    assert report.summary_lines(out) == [
        f"toy / full: 18 run records in {out}",
        "base batch 128: accuracy 0.9820 ± 0.004 (band over 3 ok seed(s), higher is better)",
        "  date: keeps the base-batch band up to batch 8192 (x64), its largest run",
        "  linear: misses the base-batch band already at batch 1024 (x8): 0.9320 vs base "
        "0.9820 ± 0.004; at 8192 (x64): diverged in 3 of 3 seeds (seed 0: no reason recorded)",
        "paper diff: Targets and claims judged: 3 of 6 (3 no verified reference): 1 reproduced, "
        "2 within tolerance, 0 missed.",
        "  paper claim 'batch x8 without loss': within tolerance: date at x8 0.9810 vs base "
        "0.9820 ± 0.004",
        "  paper claim 'batch x64 without loss': within tolerance: date at x64 0.9790 vs base "
        "0.9820 ± 0.004",
        *file_lines(out),
    ]


def test_a_claim_not_run_a_miss_and_a_divergence_in_words(tmp_path) -> None:
    records = [make_record("date", BASE, seed, 0.98 + 0.001 * seed) for seed in range(3)]
    records += [make_record("date", 256, 0, 0.981), make_record("date", 512, 0, 0.95)]
    records += [make_record("date", 1024, 0, 0.98)]  # back within the band: said
    records += [make_record("linear", BASE, 0, 0.98), diverged_on_loss(256, 0)]
    records = [{**record, "preset": "quick"} for record in records]
    out = write(tmp_path, records)
    report.write_report(out, TARGETS, [X64], band_floor=0.002)
    lines = report.summary_lines(out)
    assert lines[2:4] == [
        "  date: keeps the base-batch band up to batch 256 (x2); not at 512 (x4): 0.9500 vs base "
        "0.9810 ± 0.002 (within it again at 1024 (x8))",
        "  linear: misses the base-batch band already at batch 256 (x2): diverged in 1 of 1 seeds "
        f"(seed 0 at step 63: {loss_reason(63)}) vs base 0.9810 ± 0.002",
    ]
    assert (
        "paper diff: Targets and claims judged: 0 of 4 (1 not run, 3 not applicable): "
        in (lines[4])
    )
    assert lines[5] == (
        "  paper claim 'batch x64 without loss': not run in this preset (largest batch 1024 = x8)"
    )


@pytest.mark.parametrize("base", ["all diverged", "missing"])
def test_without_an_ok_base_batch_run_nothing_is_judged(tmp_path, base) -> None:
    records = [make_record("date", 1024, seed, 0.97) for seed in range(2)]
    if base == "all diverged":
        records += [diverged_on_loss(BASE, seed) for seed in range(2)]
    out = write(tmp_path, records)
    report.write_report(out, TARGETS, [X64], band_floor=0.002)
    lines = report.summary_lines(out)
    assert lines[1] == "base batch 128: no ok run, so no band to judge larger batches by"
    assert "  date: largest batch run 1024 (x8); not judged (no base-batch band)" in lines
    if base == "all diverged":
        assert "  linear: only the base batch 128 was run" in lines
    assert lines[-2:] == file_lines(out)


def test_before_the_report_is_written_it_says_so(tmp_path) -> None:
    out = write_records(tmp_path, sweep())
    with pytest.raises(FileNotFoundError, match=r"summary\.json"):
        report.summary_lines(out)
