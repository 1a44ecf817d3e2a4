"""Failure handling: divergence is recorded and the sweep goes on; a killed run corrupts nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reproduce.harness.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_a_run_forced_to_nan_is_recorded_as_diverged_and_the_sweep_continues(tmp_path):
    out = tmp_path / "o"
    # lr 1e30 blows the weights up within a step or two; the second batch size still runs.
    argv = [
        "mnist_lstm",
        "--preset",
        "smoke",
        "--methods",
        "none",
        "--batch-sizes",
        "32,128",
        "--set",
        "lr=1e30",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    records = {p.name: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    assert set(records) == {"none_b32_s0.json", "none_b128_s0.json"}
    for record in records.values():
        assert record["status"] == "diverged"
        assert record["diverged_at_step"] is not None
        assert len(record["curves"]["loss"]) < record["total_steps"]
        assert record["final"] == {}
    assert "diverged" in (out / "tables.md").read_text()


def test_a_killed_sweep_leaves_only_complete_records(tmp_path):
    """SIGKILL a sweep while it trains: every record present is complete JSON, no temp file remains
    visible as a record, and rerunning finishes the sweep."""
    out = tmp_path / "o"
    argv = [
        sys.executable,
        "reproduce/run.py",
        "mnist_lstm",
        "--preset",
        "smoke",
        "--methods",
        "none,sqrt,date",
        "--batch-sizes",
        "32,128",
        "--out",
        str(out),
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / "runs").glob("*.json")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    finished = list((out / "runs").glob("*.json"))
    assert finished, "the sweep was killed before writing any record; the test learned nothing"
    assert len(finished) < 6, "the sweep finished before the kill; the test learned nothing"
    for path in finished:
        record = json.loads(path.read_text())
        assert record["status"] == "ok"
    assert main(argv[2:]) == 0
    assert len(list((out / "runs").glob("*.json"))) == 6
    assert not list((out / "runs").glob("*.tmp"))
