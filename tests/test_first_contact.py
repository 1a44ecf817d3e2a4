"""benchmarks/first_contact.py times the README's commands on a fresh clone and records them;
the README's section is generated from that record.

The timing script runs here on a small git repository whose bin/ commands are shell scripts (the
real ones take half an hour), so what is tested is the clone, the order, the record and the
refusals, not the project's own times."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from reproduce.harness.report.first_contact import duration, first_contact_section

REPO = Path(__file__).resolve().parents[1]


def load_timing_script():
    spec = importlib.util.spec_from_file_location(
        "first_contact", REPO / "benchmarks" / "first_contact.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_project(root: Path, test_exit: int = 0) -> Path:
    """A git repository with bin/setup, bin/reproduce and bin/test that log their calls."""
    (root / "bin").mkdir(parents=True)
    scripts = {
        "setup": 'echo setup >> calls.log\necho "bin/setup: .venv is ready"',
        "reproduce": 'echo "reproduce $*" >> calls.log\necho "trained $1"',
        "test": (
            'echo test >> calls.log\necho "=== 12 passed, 1 skipped in 3.21s ==="\n'
            f"exit {test_exit}"
        ),
    }
    for name, body in scripts.items():
        path = root / "bin" / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(0o755)
    for command in (
        ["init", "--quiet"],
        ["add", "bin"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "fake"],
    ):
        subprocess.run(["git", "-C", str(root), *command], check=True)
    return root


def test_the_readme_commands_run_in_order_on_a_fresh_clone_and_are_recorded(tmp_path):
    timing = load_timing_script()
    project = fake_project(tmp_path / "project")
    out = tmp_path / "results" / "first_contact.json"

    exit_code = timing.main(["--repo", str(project), "--out", str(out), "--max-load", "1000"])

    assert exit_code == 0
    record = json.loads(out.read_text())
    names = [step["name"] for step in record["steps"]]
    assert names == [
        "setup",
        *(f"smoke {name}" for name in timing.EXPERIMENTS),
        "main job",
        "tests",
    ]
    assert record["complete"] is True
    assert record["git_commit"] == timing.committed_head(project)
    assert record["steps"][-1]["pytest_summary"] == "12 passed, 1 skipped in 3.21s"
    assert record["steps"][0]["pytest_summary"] is None
    assert record["steps"][-2]["output_tail"] == ["trained mnist_lstm"]
    assert all(step["seconds"] >= 0 and step["exit_code"] == 0 for step in record["steps"])
    # It ran in a clone, never in the repository itself.
    assert not (project / "calls.log").exists()


def test_a_failing_step_is_recorded_as_failed_and_exits_1(tmp_path):
    timing = load_timing_script()
    project = fake_project(tmp_path / "project", test_exit=3)
    out = tmp_path / "first_contact.json"

    assert timing.main(["--repo", str(project), "--out", str(out), "--max-load", "1000"]) == 1

    record = json.loads(out.read_text())
    assert record["complete"] is False
    assert record["steps"][-1]["exit_code"] == 3
    section = first_contact_section(tmp_path)
    assert "**failed** (exit 3)" in section
    assert "It stopped at the failed step." in section


def test_a_busy_machine_is_refused_with_exit_2_and_nothing_written(tmp_path, monkeypatch, capsys):
    timing = load_timing_script()
    project = fake_project(tmp_path / "project")
    out = tmp_path / "first_contact.json"
    monkeypatch.setattr(timing.os, "getloadavg", lambda: (3.5, 3.0, 2.0))

    exit_code = timing.main(["--repo", str(project), "--out", str(out), "--wait", "0"])

    assert exit_code == 2
    assert "load average stayed at or above 0.5" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--max-load", "0"], ["--wait", "-1"], ["--repo", "/"]])
def test_bad_options_exit_2(argv, tmp_path, capsys):
    timing = load_timing_script()
    with pytest.raises(SystemExit) as stopped:
        timing.main([*argv, "--out", str(tmp_path / "x.json")])
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_the_section_names_commit_machine_date_and_each_step(tmp_path):
    record = {
        "kind": "first_contact",
        "date": "2026-12-07T05:00:00+00:00",
        "git_commit": "0123456789abcdef",
        "python": "3.11.7",
        "hardware": {"cpu_model": "Some CPU", "cpu_count": 2, "memory_gib": 23.4},
        "complete": True,
        "steps": [
            {"command": "bin/setup", "seconds": 75.2, "exit_code": 0, "load_before": 0.1},
            {
                "command": "bin/test",
                "seconds": 3725,
                "exit_code": 0,
                "load_before": 1.9,
                "pytest_summary": "1100 passed in 600.00s",
            },
        ],
    }
    (tmp_path / "first_contact.json").write_text(json.dumps(record))

    section = first_contact_section(tmp_path)

    assert "commit `0123456789`" in section and "2026-12-07" in section
    assert "Some CPU, 2 cores, 23.4 GiB" in section
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in section.splitlines()]
    assert ["`bin/setup`", "1 min 15 s", "ok"] in cells
    assert "load average was 0.1 when it started" in section
    assert "1 h 02 min" in section and "1100 passed in 600.00s" in section
    assert "stopped" not in section


def test_the_main_jobs_comparison_with_the_published_records_is_its_result(tmp_path):
    step = {"command": "bin/reproduce mnist_lstm", "seconds": 398.5, "exit_code": 0}
    step |= {"load_before": 1.2, "pytest_summary": None}
    step["output_tail"] = ["  sqrt b=2048: yours 0.58: agrees", "  11 of 12 compared cells agree"]
    record = {"date": "2026-12-07", "git_commit": "0" * 40, "python": "3.11", "complete": True}
    record |= {"hardware": {"cpu_count": 2}, "steps": [step]}
    (tmp_path / "first_contact.json").write_text(json.dumps(record))

    section = first_contact_section(tmp_path)

    assert "ok; 11 of 12 compared cells agree with the published records" in section


def test_without_a_record_the_section_says_how_to_make_one(tmp_path):
    assert "Not timed yet: `python benchmarks/first_contact.py`" in first_contact_section(tmp_path)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.4, "4 s"), (59.6, "1 min 00 s"), (185, "3 min 05 s"), (7260, "2 h 01 min")],
)
def test_durations_read_like_a_clock(seconds, text):
    assert duration(seconds) == text
