"""The end of a user's run: each cell next to the published records of the same preset
(reproduce/harness/report/published.py), and the default output folder outside results/."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_report import BASE, CLAIMS, TARGETS, make_record, sweep, write_records

from reproduce.harness import report
from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.cli.reports import end_of_job_lines
from reproduce.harness.report.published import compare_with_published, comparison_lines


def published_folder(tmp_path: Path) -> Path:
    """sweep(): band 0.982 ± 0.004 at the base batch; date 0.981 at x8; linear 0.932 at x8 and
    diverged at x64."""
    out = write_records(tmp_path / "published", sweep())
    report.write_report(out, TARGETS, CLAIMS, band_floor=0.002)
    return out


def test_each_cell_is_judged_against_the_published_band(tmp_path):
    published = published_folder(tmp_path)
    mine = [
        make_record("date", BASE, 0, 0.981),  # within 0.004 of 0.982
        make_record("date", 1024, 0, 0.970),  # 0.011 below 0.981: differs
        make_record("linear", 8192, 0, None, status="diverged"),  # both diverged
        make_record("date", 2048, 0, 0.98),  # no published cell
    ]
    yours = write_records(tmp_path / "yours", mine)
    rows = {(row.method, row.batch_size): row for row in compare_with_published(yours, published)}
    assert rows[("date", BASE)].verdict == "agrees"
    assert rows[("date", BASE)].published == pytest.approx(0.982)
    assert rows[("date", 1024)].verdict == "differs"
    assert rows[("linear", 8192)].verdict == "both diverged"
    assert rows[("date", 2048)].verdict == "not published"
    assert all(row.half_width == pytest.approx(0.004) for row in rows.values())
    lines = comparison_lines(yours, published)
    assert lines[0].startswith(f"compared with the published records in {published} (accuracy")
    assert "  date b=1024: yours 0.9700, published 0.9810 ± 0.004: differs" in lines
    assert lines[-1] == "  2 of 3 compared cells agree with the published ones"


def test_a_users_run_goes_to_runs_and_ends_with_the_comparison(tmp_path, monkeypatch):
    """Without --out the sweep writes runs/EXPERIMENT/PRESET (never results/), and the end of the
    job compares with results/EXPERIMENT/PRESET when that folder has published records."""
    from reproduce.harness.cli import reports as cli

    argv = ["mnist_lstm", "--preset", "quick"]
    spec = build_spec(build_parser().parse_args(argv), argv)
    assert spec.out_dir == Path("runs") / "mnist_lstm" / "quick"
    root = tmp_path / "results"
    published = published_folder(tmp_path)
    (root / "mnist_lstm").mkdir(parents=True)
    published.rename(root / "mnist_lstm" / "quick")
    monkeypatch.setattr(cli, "PUBLISHED", root)
    yours = write_records(tmp_path / "yours", [make_record("date", BASE, 0, 0.981)])
    report.write_report(yours, TARGETS, CLAIMS, band_floor=0.002)
    lines = end_of_job_lines(dataclasses.replace(spec, out_dir=yours))
    assert any(line.startswith("compared with the published records in") for line in lines)
    assert lines[-1] == "  1 of 1 compared cells agree with the published ones"
    # --out results/...: the folder is the published one; nothing to compare it with
    same = end_of_job_lines(dataclasses.replace(spec, out_dir=root / "mnist_lstm" / "quick"))
    assert not any("compared with the published" in line for line in same)
