"""Data parallelism: 2 CPU processes (gloo, launched by torchrun) follow the same loss curve as
1 process at the same global batch, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.harness.cli.run import main

REPO = Path(__file__).resolve().parents[1]
RUN = [
    "mnist_lstm", "--preset", "smoke", "--methods", "date", "--batch-sizes", "64", "--quiet",
    "--set", "run.micro_batch_size=16", "--set", "epochs=2",
]  # fmt: skip
RECORD = Path("runs") / "date_b64_s0.json"


def test_two_gloo_processes_follow_the_single_process_curve(tmp_path):
    assert main([*RUN, "--out", str(tmp_path / "one")]) == 0
    single = json.loads((tmp_path / "one" / RECORD).read_text())

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*launch, "reproduce/run.py", *RUN, "--out", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    double = json.loads((tmp_path / "two" / RECORD).read_text())

    assert double["world_size"] == 2 and single["world_size"] == 1
    assert double["accumulation_steps"] == 2 and single["accumulation_steps"] == 4
    assert double["total_steps"] == single["total_steps"]
    assert double["curves"]["lr"] == single["curves"]["lr"]
    assert double["curves"]["loss"] == pytest.approx(single["curves"]["loss"], rel=1e-4)
    # gradient noise: one process compares its first micro-batch (16) with the batch; two
    # compare rank 0's share (32, read in DDP's communication hook) with the all-reduced batch
    assert single["gradient_noise"]["sizes"] == [{"from_step": 0, "small": 16, "big": 64}]
    assert double["gradient_noise"]["sizes"] == [{"from_step": 0, "small": 32, "big": 64}]
    for record in (single, double):
        assert len(record["curves"]["noise_scale"]) == len(record["curves"]["step"])
        assert None not in record["curves"]["noise_trace"]
    for name, value in single["final"].items():
        assert double["final"][name] == pytest.approx(value, abs=2e-3)
    # only rank 0 wrote: one record per run, one report
    assert sorted(p.name for p in (tmp_path / "two" / "runs").iterdir()) == [RECORD.name]
