"""Failure handling: divergence is recorded and the sweep goes on; a killed run corrupts nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reproduce.harness.cli.run import main
from reproduce.harness.run.registry import experiments

REPO = Path(__file__).resolve().parents[1]


def test_a_run_forced_to_nan_is_recorded_as_diverged_and_the_sweep_continues(tmp_path, monkeypatch):
    """The loss turns NaN at the 4th step of the batch-32 run; the batch-128 run still trains."""
    experiment = experiments()["mnist_lstm"]
    real_loss = experiment.loss
    calls = {"count": 0}

    def loss_that_turns_nan(model, batch, state):
        loss_sum, count, state = real_loss(model, batch, state)
        calls["count"] += 1
        if calls["count"] == 4:  # the 4th step of the first run (one micro-batch per step)
            loss_sum = loss_sum * float("nan")
        return loss_sum, count, state

    monkeypatch.setitem(
        experiments(), "mnist_lstm", dataclasses.replace(experiment, loss=loss_that_turns_nan)
    )
    out = tmp_path / "o"
    argv = [
        "mnist_lstm",
        "--preset",
        "smoke",
        "--methods",
        "none",
        "--batch-sizes",
        "32,128",
        "--out",
        str(out),
        "--quiet",
        "--set",
        "run.micro_batch_size=32",
    ]
    assert main(argv) == 0
    records = {p.name: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    diverged, healthy = records["none_b32_s0.json"], records["none_b128_s0.json"]
    assert diverged["status"] == "diverged"
    assert diverged["diverged_at_step"] == 3
    assert len(diverged["curves"]["loss"]) == 4 < diverged["total_steps"]
    assert diverged["final"] == {}
    assert healthy["status"] == "ok" and healthy["final"]["accuracy"] > 0
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
    # a temporary file left by a write the kill interrupted (made here, so the case is tested
    # whether or not the kill landed mid-write), aged past the staleness margin
    left = out / "runs" / ".none_b32_s0.json.killed.tmp"
    left.write_text('{"half": ')
    for temporary in (out / "runs").glob(".*.tmp"):
        os.utime(temporary, (time.time() - 3600, time.time() - 3600))
    assert main(argv[2:]) == 0
    assert len(list((out / "runs").glob("*.json"))) == 6
    assert not list((out / "runs").glob("*.tmp")), "stale temporaries are cleaned up"
