"""Checkpoint and resume: a run killed with SIGKILL, or stopped with SIGTERM, and resumed ends
exactly (bitwise, on CPU) where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reproduce.harness.cli.run import main
from reproduce.harness.run.checkpoint import load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
# 384 steps of a small model: long enough to be interrupted, a few seconds in all.
RUN = [
    "mnist_lstm", "--preset", "smoke", "--methods", "date", "--batch-sizes", "32", "--quiet",
    "--set", "epochs=3", "--set", "model.hidden_size=32", "--set", "data.train_examples=4096",
    "--set", "run.micro_batch_size=16", "--set", "run.checkpoint_every_epochs=0.05",
]  # fmt: skip
RECORD = Path("runs") / "date_b32_s0.json"
CHECKPOINT = Path("checkpoints") / "date_b32_s0.pt"


def start_run(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count as the tests' own runs
    return subprocess.Popen(
        [sys.executable, "reproduce/run.py", *RUN, "--out", str(out)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("uninterrupted")
    assert main([*RUN, "--out", str(out)]) == 0
    return json.loads((out / RECORD).read_text())


def assert_same_run(resumed: dict, reference: dict) -> None:
    assert resumed["curves"]["loss"] == reference["curves"]["loss"]  # bitwise, every step
    assert resumed["curves"]["lr"] == reference["curves"]["lr"]
    # the gradient noise curves (micro-batch 16 of 32) continue their smoothing where it stopped
    assert resumed["curves"]["noise_scale"] == reference["curves"]["noise_scale"]
    assert [e["metrics"] for e in resumed["evals"]] == [e["metrics"] for e in reference["evals"]]
    assert resumed["final"] == reference["final"]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, uninterrupted):
    out = tmp_path / "killed"
    process = start_run(out)
    wait_for(out / CHECKPOINT, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (out / RECORD).exists(), "the run finished before the kill; nothing was tested"
    saved = load_checkpoint(out / CHECKPOINT)  # complete and loadable with weights_only
    assert 0 < saved["progress"]["step"] < uninterrupted["total_steps"]

    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    resumed = json.loads((out / RECORD).read_text())
    assert resumed["resumed_from_step"] >= saved["progress"]["step"]
    assert_same_run(resumed, uninterrupted)
    assert not (out / CHECKPOINT).exists(), "the checkpoint of a finished run is removed"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_checkpoints_and_exits_then_resumes(tmp_path, uninterrupted, stop):
    """SIGTERM (a scheduler) and SIGINT (Ctrl-C) both checkpoint, say how to continue, and exit
    with the shell's code for the signal (143, 130), without a traceback."""
    out = tmp_path / "stopped"
    process = start_run(out)
    wait_for(out / CHECKPOINT, process)
    process.send_signal(stop)
    assert process.wait(timeout=60) == 128 + stop
    message = process.stderr.read().decode()
    assert f"stopped by {stop.name}" in message and "--resume" in message
    assert "Traceback" not in message
    assert not (out / RECORD).exists()
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert_same_run(json.loads((out / RECORD).read_text()), uninterrupted)


def test_without_resume_a_checkpoint_is_not_used(tmp_path, uninterrupted, capsys):
    out = tmp_path / "fresh"
    process = start_run(out)
    wait_for(out / CHECKPOINT, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert main([*RUN[:-2], "--out", str(out)]) == 0  # the same run, minus the checkpoints
    record = json.loads((out / RECORD).read_text())
    assert record["resumed_from_step"] is None
    assert_same_run(record, uninterrupted)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}})

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_resumed_run_keeps_the_checkpoints_micro_batch(tmp_path, uninterrupted):
    """Resumed without run.micro_batch_size, the run continues with the checkpoint's micro-batch
    (16), not the default rule's (32, the whole batch), and records one micro-batch range."""
    out = tmp_path / "killed"
    process = start_run(out)
    wait_for(out / CHECKPOINT, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    at = RUN.index("run.micro_batch_size=16")
    without_micro = RUN[: at - 1] + RUN[at + 1 :]  # drop "--set run.micro_batch_size=16"
    assert main([*without_micro, "--out", str(out), "--resume"]) == 0
    record = json.loads((out / RECORD).read_text())
    assert record["micro_batches"] == [{"from_step": 0, "size": 16}]
    assert_same_run(record, uninterrupted)
