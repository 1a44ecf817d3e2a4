"""The CLI of reproduce/run.py: a frozen flag set, and misuse that exits 2 writing nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.harness.cli.arguments import build_parser
from reproduce.harness.cli.run import main
from reproduce.harness.run.registry import experiments

REPO = Path(__file__).resolve().parents[1]

FROZEN_FLAGS = {
    "-h",
    "--help",
    "--methods",
    "--batch-sizes",
    "--preset",
    "--seeds",
    "--device",
    "--data-dir",
    "--out",
    "--plan",
    "--estimate",
    "--set",
    "--resume",
    "--quiet",
    "--launcher",
    "--max-parallel",
    "--shard",
}


def test_flag_set_is_frozen():
    """Changing the CLI is a deliberate act: update this set and the README together."""
    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    assert flags == FROZEN_FLAGS


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no_such_experiment"], f"valid choices: {', '.join(experiments())}"),
        (
            ["mnist_lstm", "--methods", "date,cubic"],
            "unknown method 'cubic'; valid choices: none, linear",
        ),
        (["mnist_lstm", "--batch-sizes", "128,0"], "0 is not a positive batch size"),
        (["mnist_lstm", "--batch-sizes", "128,abc"], "'abc' is not an integer"),
        (
            ["mnist_lstm", "--set", "learning_rate=0.1"],
            "unknown key 'learning_rate'; valid recipe keys: batch_size",
        ),
        (["mnist_lstm", "--set", "lr=fast"], "--set lr: 'fast' is not float"),
        (["mnist_lstm", "--set", "lr"], "expected KEY=VALUE"),
        (["mnist_lstm", "--set", "model.layers=3"], "valid: model.hidden_size"),
        (["mnist_lstm", "--set", "data.source=s3"], "valid choices: local, hub"),
        (["mnist_lstm", "--set", "decay=zigzag"], "decay"),
        (["mnist_lstm", "--set", "lr=-1"], "lr"),
        (["mnist_lstm", "--seeds", "0"], "--seeds 0"),
        (["mnist_lstm", "--data-dir", "/no/such/folder"], "no such folder"),
    ],
)
def test_misuse_exits_2_with_a_clear_message_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_argparse_errors_also_exit_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "reproduce/run.py",
            "mnist_lstm",
            "--preset",
            "huge",
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "invalid choice: 'huge'" in result.stderr
    assert not (tmp_path / "o").exists()


def test_warmup_beyond_budget_names_the_batch(tmp_path, capsys):
    argv = [
        "mnist_lstm",
        "--preset",
        "full",
        "--set",
        "warmup_epochs=1",
        "--batch-sizes",
        "128,8192",
    ]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "8192" in error and "warmup" in error
    assert not (tmp_path / "o").exists()


def test_plan_prints_resolved_recipes_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "mnist_lstm",
        "--preset",
        "full",
        "--plan",
        "--methods",
        "date,linear",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    table = capsys.readouterr().out.split("\n\n")[0]  # the examples per epoch follow the table
    lines = {
        line.split("|")[1].strip() + "@" + line.split("|")[2].strip(): line
        for line in table.splitlines()[2:]
    }
    assert set(lines) == {
        f"{m}@{b}" for m in ("date", "linear") for b in (128, 256, 512, 1024, 2048, 4096, 8192)
    }
    assert "same run as" in table
    assert not out.exists()


def test_script_runs_from_any_folder(tmp_path):
    """`python reproduce/run.py` works without installing the package (it adds the repo to
    sys.path)."""
    result = subprocess.run(
        [sys.executable, str(REPO / "reproduce" / "run.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "experiments (presets: batch sizes):\n" in result.stdout
    assert all(f"\n  {name} " in result.stdout for name in experiments())
    assert "aliases: legw = date" in result.stdout and "default preset: quick" in result.stdout


def test_plan_prints_at_once_and_times_steps_only_with_estimate(monkeypatch, capsys):
    """--plan alone never times a training step (ResNet-50's took minutes); --estimate does, and
    a sweep without --estimate times nothing before it trains."""
    from reproduce.harness.sweep import estimate

    def no_timing(*args, **kwargs):
        raise AssertionError("a step was timed without --estimate")

    monkeypatch.setattr(estimate, "measure_step_cost", no_timing)
    assert main(["imagenet_resnet50", "--preset", "full", "--plan", "--methods", "date"]) == 0
    out = capsys.readouterr().out
    assert "32768" in out and "--estimate" in out and "Whole sweep" not in out
    monkeypatch.undo()
    argv = ["mnist_lstm", "--preset", "smoke", "--methods", "date", "--batch-sizes", "32"]
    assert main([*argv, "--plan", "--estimate"]) == 0
    assert "Whole sweep: 1 runs to train" in capsys.readouterr().out
