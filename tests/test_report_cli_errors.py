"""reproduce/report.py on a bad record: one line naming the file, exit 2, nothing written.

A record can be cut short (a copy interrupted), edited by hand, or not be a record at all; the
report must say which file and what is wrong, without a traceback, and leave every report file
(of that folder and of the other folders given) as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_readme_results import mnist_sweep
from test_report import write_records

from reproduce.harness import report
from reproduce.harness.cli.arguments import USAGE_ERROR
from reproduce.harness.cli.report import main as main_report
from reproduce.harness.core.targets import Target


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def drop_final(path: Path) -> None:
    record = json.loads(path.read_text())
    del record["final"]
    path.write_text(json.dumps(record))


def not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe" + path.read_bytes())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file outside runs/ (the generated ones), with its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "runs" not in path.relative_to(folder).parts
    }


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncate, "not valid JSON: Unterminated string starting at (line "),
        (drop_final, "missing required fields ['final']"),
        (not_utf8, "not a run record: not UTF-8 text (byte 0 is 0xff)"),
    ],
)
def test_a_bad_record_is_named_on_one_line_and_nothing_is_written(
    tmp_path, capsys, damage, message
) -> None:
    good = write_records(tmp_path / "mnist_lstm" / "full", mnist_sweep(0.981))
    bad = write_records(tmp_path / "mnist_lstm" / "quick", mnist_sweep(0.5, "quick"))
    assert main_report([str(good), str(bad)]) == 0
    before = {folder: snapshot(folder) for folder in (good, bad)}
    assert before[bad]  # the reports exist and must survive
    record = bad / "runs" / "date_b128_s0.json"  # the first file, read before any other
    damage(record)
    capsys.readouterr()

    assert main_report([str(good), str(bad)]) == USAGE_ERROR
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: {record}: {message}")
    assert "Nothing was written" in line and "Traceback" not in captured.err
    assert captured.out == ""
    # the good folder, given first, was not regenerated either: reading comes before writing
    assert {folder: snapshot(folder) for folder in (good, bad)} == before


def test_a_truncated_record_says_it_looks_truncated(tmp_path, capsys) -> None:
    folder = write_records(tmp_path / "mnist_lstm" / "full", mnist_sweep(0.981))
    truncate(folder / "runs" / "date_b8192_s1.json")
    assert main_report([str(folder)]) == USAGE_ERROR
    assert "looks truncated" in capsys.readouterr().err
    assert snapshot(folder) == {}  # no report file was created


def test_records_of_different_sweeps_in_one_folder_are_refused(tmp_path, capsys) -> None:
    records = mnist_sweep(0.981)
    records[-1] = {**records[-1], "preset": "quick"}
    folder = write_records(tmp_path / "mnist_lstm" / "full", records)
    assert main_report([str(folder)]) == USAGE_ERROR
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {folder}: records disagree on preset: ['full', 'quick']")
    assert snapshot(folder) == {}


def test_write_report_computes_everything_before_writing_a_file(tmp_path) -> None:
    """A target whose mode contradicts the records' fails in the paper diff, after the tables
    are computed: no file may have been written by then."""
    folder = write_records(tmp_path, mnist_sweep(0.981))
    contradicting = Target("accuracy", 0.98, "min", 0.0, "a typo", "paper table")
    with pytest.raises(ValueError, match="contradicts the records' mode"):
        report.write_report(folder, [contradicting], [], band_floor=0.002)
    assert snapshot(folder) == {}
