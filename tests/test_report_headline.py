"""The paper diff's headline states how many targets and claims were judged, so a preset whose
claim was not run (or whose targets do not apply) never reads as a pass; --fail-on-missed still
fails only on a verified miss."""

from __future__ import annotations

import json

from test_readme_results import mnist_record, readme_with_markers, report_args
from test_report import CLAIMS, TARGETS, sweep, write_records

from reproduce.harness import report
from reproduce.harness.cli.report import main as main_report
from reproduce.harness.core.targets import Claim


def quick_sweep_without_the_claims_batch() -> list[dict]:
    """The reduced preset at batches up to x8 (1024): the claim x8 is there, x64 is not."""
    return [{**record, "preset": "quick"} for record in sweep() if record["batch_size"] <= 1024]


def headline_of(markdown: str) -> str:
    lines = markdown.splitlines()
    return lines[lines.index("## Targets and claims") + 2]


def test_a_claim_not_run_and_targets_not_applicable_read_as_nothing_judged(tmp_path) -> None:
    claims = [
        Claim("x64 without loss", "abstract", "paper abstract", "accuracy", "max", 64, "date")
    ]
    out = write_records(tmp_path, quick_sweep_without_the_claims_batch())
    paths = report.write_report(out, TARGETS, claims, band_floor=0.002)
    markdown = paths["paper_diff"].read_text()
    headline = headline_of(markdown)
    assert headline == (
        "Targets and claims judged: **0 of 4** (1 not run, 3 not applicable): nothing was "
        "judged, so nothing is reproduced or missed."
    )
    assert "missed: **0**" not in markdown
    assert json.loads(paths["paper_diff_json"].read_text())["missed_verified"] == 0


def test_the_headline_counts_the_judged_rows_and_their_outcome(tmp_path) -> None:
    out = write_records(tmp_path, sweep())  # full preset: targets and the x8 claim are judged
    markdown = report.write_report(out, TARGETS, CLAIMS, band_floor=0.002)["paper_diff"]
    assert headline_of(markdown.read_text()) == (
        "Targets and claims judged: **2 of 5** (3 no verified reference): 1 reproduced, "
        "1 within tolerance, **0 missed**."
    )
    counts = dict.fromkeys(report.VERDICTS, 0) | {"missed": 2, "not run": 1}
    assert report.judged_headline(counts) == (
        "Targets and claims judged: **2 of 3** (1 not run): 0 reproduced, 0 within tolerance, "
        "**2 missed**."
    )
    assert report.judged_headline(dict.fromkeys(report.VERDICTS, 0)) == (
        "No targets or claims to judge."
    )


def test_readme_section_and_fail_on_missed_when_the_claim_was_not_run(tmp_path, capsys) -> None:
    """mnist_lstm's claim is DATE at x64 (8192); a quick sweep up to x8 never runs it."""
    records = [mnist_record("date", 128, seed, 0.98 + 0.001 * seed) for seed in range(3)]
    records += [mnist_record("date", 1024, seed, 0.97) for seed in range(3)]
    folder = tmp_path / "results" / "mnist_lstm" / "quick"
    write_records(folder, [{**record, "preset": "quick"} for record in records])
    readme = readme_with_markers(tmp_path / "README.md")
    assert main_report(report_args(tmp_path, readme, "--readme", "--fail-on-missed")) == 0
    text = readme.read_text()
    assert (
        "**Paper diff.** Targets and claims judged: **0 of 2** (1 not run, 1 not applicable): "
        "nothing was judged, so nothing is reproduced or missed." in text
    )
    assert "missed: **0**" not in text
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["paper_diff"]["missed_verified"] == 0
