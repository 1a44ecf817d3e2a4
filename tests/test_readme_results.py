"""The README's results section is generated from results/ and fresh, and reproduce/report.py's
machine-readable summary (--json) and exit status (--fail-on-missed) report missed targets.

Records built here are synthetic (tests/test_report.py's factory) except in the end-to-end test,
which runs a real smoke sweep."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import make_record, write_records

from reproduce.harness.cli.report import main as main_report
from reproduce.harness.cli.run import main
from reproduce.harness.report.budget_costs import budget_cost_pages
from reproduce.harness.report.readme import (
    CLAIMS_BEGIN,
    README_BEGIN,
    README_COMMAND,
    README_END,
    StaleReport,
    claims_section,
    regenerated_pages,
)
from reproduce.harness.run.registry import get_experiment

REPO = Path(__file__).resolve().parents[1]


def tracked_results(tmp_path: Path) -> Path:
    """A copy of the results/ files git tracks: a sweep may be writing records nobody has
    committed yet, and the README describes the committed results. Outside a git checkout,
    results/ as it is."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "results"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return REPO / "results"
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "results").mkdir(exist_ok=True)
    return tmp_path / "results"


def test_the_readme_results_section_is_fresh(tmp_path):
    """The README's claims section, docs/results.md's results section and the results pages' cost
    sections are what `--readme` writes from the tracked records (pages copied beside a copy of
    results/, so that links come out as in the repository)."""
    results = tracked_results(tmp_path)
    pages = {}
    for name in ("README.md", "docs/results.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
        pages[tmp_path / name] = (REPO / name).read_text(encoding="utf-8")
    for page, _ in budget_cost_pages(results):  # results/<experiment>/README.md, copied above
        pages[page] = page.read_text(encoding="utf-8")
    try:
        fresh = regenerated_pages(tmp_path / "README.md", results)
    except StaleReport as error:
        pytest.fail(f"{error}: run `{README_COMMAND}`, then commit results/ and README.md")
    assert set(fresh) == set(pages)
    for page, text in pages.items():
        assert fresh[page] == text, (
            f"{page.relative_to(tmp_path)}'s generated section is stale: run `{README_COMMAND}` "
            "and commit it (only results/ files tracked by git count)"
        )
    assert CLAIMS_BEGIN in pages[tmp_path / "README.md"]
    assert README_BEGIN in pages[tmp_path / "docs/results.md"]


def test_the_claims_section_has_one_row_per_claim_and_links_the_details(tmp_path):
    write_records(tmp_path / "results" / "mnist_lstm" / "full", mnist_sweep(0.979))
    assert main_report(["--results", str(tmp_path / "results")]) == 0
    section = claims_section(tmp_path / "results")
    rows = [line for line in section.splitlines() if line.startswith("| mnist_lstm / full")]
    assert len(rows) == 1 and "LSTM batch scaled x64" in rows[0]
    assert "0.9790 ± 0 (n=3)" in rows[0] and rows[0].endswith("| within tolerance |")
    assert section.endswith("[docs/results.md](docs/results.md).")


# ---------------------------------------------------------------------------------- fixtures


def mnist_record(method: str, batch_size: int, seed: int, value: float | None, **kwargs):
    """A record of a registered experiment (report.py refuses unknown ones), full preset, whose
    base recipe is the preset's (coverage plans the preset from it: make_record's toy base
    recipe cannot be scaled to x64 with DATE, so it has no plan)."""
    record = make_record(method, batch_size, seed, value, **kwargs)
    base = get_experiment("mnist_lstm").recipe_for("full").to_dict()
    return {**record, "experiment": "mnist_lstm", "preset": "full", "base_recipe": base}


def mnist_sweep(date_at_x64: float, preset: str = "full") -> list[dict]:
    """Base batch 128 over three seeds, and DATE at 8192 (the x64 of mnist_lstm's claim)."""
    records = [mnist_record("date", 128, seed, 0.980 + 0.001 * seed) for seed in range(3)]
    records += [mnist_record("date", 8192, seed, date_at_x64) for seed in range(3)]
    return [{**record, "preset": preset} for record in records]


def readme_with_markers(path: Path) -> Path:
    path.write_text(f"# Title\n\nbefore\n\n{README_BEGIN}\nold text\n{README_END}\n\nafter\n")
    return path


def report_args(root: Path, readme: Path, *extra: str) -> list[str]:
    return ["--results", str(root / "results"), "--readme-file", str(readme), *extra]


# ------------------------------------------------------------------------ --readme / --check


def test_readme_is_regenerated_from_the_full_results_and_checked(tmp_path, capsys):
    folder = write_records(tmp_path / "results" / "mnist_lstm" / "full", mnist_sweep(0.979))
    write_records(tmp_path / "results" / "mnist_lstm" / "quick", mnist_sweep(0.5, "quick"))
    write_records(tmp_path / "results" / "mnist_lstm" / "smoke", mnist_sweep(0.4, "smoke"))
    readme = readme_with_markers(tmp_path / "README.md")

    assert main_report(report_args(tmp_path, readme, "--check-readme")) == 1
    assert README_COMMAND in capsys.readouterr().err
    assert main_report(report_args(tmp_path, readme, "--readme")) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old text" not in text
    # full, then the reduced quick preset; smoke results are for tests, never shown
    assert 0 < text.index("### mnist_lstm / full") < text.index("### mnist_lstm / quick")
    assert "mnist_lstm / smoke" not in text
    assert "[tables](results/mnist_lstm/quick/tables.md)" in text
    # coverage against the preset's plan: these synthetic records use other recipes
    assert "**Partial sweep: 0 of the 54 planned runs of the `full` preset" in text
    assert "6 record(s) are outside the plan" in text
    assert "| 8192" in text  # the metric table, from tables.md
    # full: the claim (DATE at x64) is judged and met; the target has no verified value
    assert (
        "**Paper diff.** Targets and claims judged: **1 of 2** (1 no verified reference): " in text
    )
    assert "**0 missed**" in text
    assert "[tables](results/mnist_lstm/full/tables.md)" in text
    assert "(results/mnist_lstm/full/plots/metric_vs_batch.png)" in text
    for provenance in ("c0ffee1234", "Test CPU 9000", "python reproduce/run.py toy --preset"):
        assert provenance in text  # from the records' env, never typed
    assert "runs trained, " in text and " min of wall time summed over them" in text
    assert main_report(report_args(tmp_path, readme, "--check-readme")) == 0

    # A record changes and nobody regenerates: both the reports and the README are stale.
    changed = mnist_record("date", 8192, 0, 0.2)
    (folder / "runs" / "date_b8192_s0.json").write_text(json.dumps(changed))
    capsys.readouterr()
    assert main_report(report_args(tmp_path, readme, "--check-readme")) == 1
    assert "older than its run records" in capsys.readouterr().err
    assert main_report(report_args(tmp_path, readme, "--readme")) == 0
    assert "**1 missed**" in readme.read_text()


def test_with_no_results_the_section_says_so(tmp_path):
    (tmp_path / "results").mkdir()
    readme = readme_with_markers(tmp_path / "README.md")
    assert main_report(report_args(tmp_path, readme, "--readme")) == 0
    text = readme.read_text()
    assert "No results are recorded yet" in text
    assert README_COMMAND in text
    assert main_report(report_args(tmp_path, readme, "--check-readme")) == 0


def test_a_readme_without_markers_is_an_error(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert main_report(report_args(tmp_path, readme, "--check-readme")) == 1
    assert README_BEGIN in capsys.readouterr().err


# ----------------------------------------------------------------- --json / --fail-on-missed


@pytest.mark.parametrize(("date_at_x64", "missed"), [(0.981, 0), (0.90, 1)])
def test_json_summary_and_fail_on_missed(tmp_path, capsys, date_at_x64, missed):
    folder = write_records(tmp_path / "mnist_lstm" / "full", mnist_sweep(date_at_x64))
    code = main_report([str(folder), "--json", "--fail-on-missed"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout is the JSON alone
    diff = json.loads((folder / "paper_diff.json").read_text())
    assert summary["missed_verified"] == diff["missed_verified"] == missed
    (entry,) = summary["folders"]
    assert entry["experiment"] == "mnist_lstm" and len(entry["missed"]) == missed
    assert code == (1 if missed else 0)
    if missed:
        assert "LSTM batch scaled x64 without losing accuracy" in captured.err
        assert "batch 8192" in captured.err
    # without --fail-on-missed the same records exit 0
    assert main_report([str(folder), "--json"]) == 0


def test_fail_on_missed_end_to_end_on_a_real_smoke_sweep(tmp_path, capsys):
    """ptb_small's smoke model is far from Zaremba's and TensorFlow's test perplexities, two
    verified external references of the full recipe: on the smoke preset they are shown but not
    judged; relabelled as the full preset, the same records miss both."""
    out = tmp_path / "ptb_small"
    argv = ["ptb_small", "--preset", "smoke", "--methods", "date", "--batch-sizes", "20"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main_report([str(out), "--json", "--fail-on-missed"]) == 0
    diff = json.loads((out / "paper_diff.json").read_text())
    targets = [row for row in diff["rows"] if row["kind"] == "target"]
    assert [row["verdict"] for row in targets] == ["not applicable"] * 2
    assert all(row["ours"] > 200 for row in targets)  # shown all the same

    for path in (out / "runs").glob("*.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "preset": "full"}))
    capsys.readouterr()
    assert main_report([str(out), "--json", "--fail-on-missed"]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    diff = json.loads((out / "paper_diff.json").read_text())
    assert summary["missed_verified"] == diff["missed_verified"] == 2
    assert "Zaremba et al. 2014" in captured.err and "ptb_word_lm.py" in captured.err
