"""Identical commands give identical records, faults never mislabel a result, and a
user's mistakes get one clear message (exit 2) with nothing written."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.cli.run import main
from reproduce.harness.run.checkpoint import save_checkpoint
from reproduce.harness.sweep.planning import plan_runs, run_config, run_key

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["mnist_lstm", "--preset", "smoke", "--quiet"]
ONE_RUN = [*SMOKE, "--methods", "date", "--batch-sizes", "32"]


def strict_json(path: Path) -> dict:
    """Parse ``path`` as standard JSON: Python's NaN/Infinity extensions are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def spec_for(argv: list[str]):
    return build_spec(build_parser().parse_args(argv), argv)


# ------------------------------------------------------------------------------------------
# Results that could be wrong without anyone noticing
# ------------------------------------------------------------------------------------------


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path, capsys):
    """A checkpoint made with lr=0.1 is not continued under lr=0.05 (the record would claim the
    new lr while the schedule continued the old one)."""
    out = tmp_path / "o"
    original = spec_for([*ONE_RUN, "--out", str(out)])
    (run,) = [r for r in plan_runs(original) if r.same_run_as is None]
    save_checkpoint(
        out / "checkpoints" / "date_b32_s0.pt",
        {
            "config_key": run_key(original, run),
            "config": run_config(original, run),
            "progress": {"step": 3, "micro_batches": [{"from_step": 0, "size": 32}]},
        },
    )
    assert main([*ONE_RUN, "--out", str(out), "--set", "lr=0.05", "--resume"]) == 2
    error = capsys.readouterr().err
    assert run_key(original, run) in error  # the checkpoint's key
    assert "recipe.lr: 0.1 in the checkpoint, 0.05 now" in error
    assert "delete the checkpoint" in error
    assert not (out / "runs").exists()


def test_the_same_command_twice_gives_bit_identical_curves(tmp_path):
    """Two processes, the same command, no pinned micro-batch: the records' curves, evaluations
    and final metrics are identical bit for bit (the micro-batch no longer comes from timing)."""
    argv = [*SMOKE, "--methods", "date", "--batch-sizes", "32,128", "--set", "epochs=2"]
    records = []
    for name in ("first", "second"):
        subprocess.run(
            [sys.executable, "reproduce/run.py", *argv, "--out", str(tmp_path / name)],
            cwd=REPO, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        records.append(
            {p.name: strict_json(p) for p in sorted((tmp_path / name / "runs").glob("*.json"))}
        )
    first, second = records
    assert set(first) == set(second) == {"date_b32_s0.json", "date_b128_s0.json"}
    for name in first:
        for key in ("curves", "evals", "final", "micro_batches", "config_key"):
            if key == "evals":
                strip = [{k: v for k, v in e.items() if k != "seconds"} for e in first[name][key]]
                again = [{k: v for k, v in e.items() if k != "seconds"} for e in second[name][key]]
                assert strip == again, name
            else:
                assert first[name][key] == second[name][key], (name, key)
    # batch 128 on CPU: the experiment's limit (128) is the micro-batch, one range, recorded
    assert first["date_b128_s0.json"]["micro_batches"] == [{"from_step": 0, "size": 128}]


def test_a_blown_up_run_is_diverged_with_its_reason_and_the_sweep_goes_on(tmp_path):
    """lr=1000: the loss explodes but stays finite; before, it was recorded as 'ok' and averaged
    into the tables. Every record is strict JSON."""
    out = tmp_path / "o"
    argv = [*SMOKE, "--methods", "none", "--batch-sizes", "32,128", "--set", "lr=1000"]
    assert main([*argv, "--out", str(out)]) == 0
    records = {p.name: strict_json(p) for p in (out / "runs").glob("*.json")}
    assert set(records) == {"none_b32_s0.json", "none_b128_s0.json"}  # the sweep went on
    blown = records["none_b32_s0.json"]
    assert blown["status"] == "diverged"
    # caught at once by the single-step rule (100 x the first loss), not after a 10-step window
    assert "exceeds 100 x the first step's loss" in blown["divergence"]["reason"]
    assert blown["diverged_at_step"] == blown["divergence"]["step"] < blown["total_steps"] - 1
    for path in (out / "summary.json", out / "paper_diff.json"):
        strict_json(path)


def test_a_final_perplexity_far_worse_than_chance_is_diverged(tmp_path):
    """PTB: a run that ends far above the vocabulary size (uniform guessing) is not a result."""
    from reproduce.harness.run.registry import experiments
    from reproduce.harness.run.trainer import final_metric_check

    ptb = experiments()["ptb_small"]
    assert final_metric_check(ptb, {"perplexity": 3.5e7}, 10)["reason"].startswith(
        "final test perplexity 3.5e+07 is worse than 20000"
    )
    assert final_metric_check(ptb, {"perplexity": 556.9}, 10) is None
    assert "not finite" in final_metric_check(ptb, {"perplexity": math.inf}, 10)["reason"]


def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main([*ONE_RUN, "--out", str(blocker / "results")]) == 2
    error = capsys.readouterr().err
    assert f"--out {blocker / 'results'}: cannot write there" in error
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("resume", [False, True])
def test_a_corrupt_checkpoint_is_named_and_set_aside_or_refused(tmp_path, capsys, resume):
    out = tmp_path / "o"
    checkpoint = out / "checkpoints" / "date_b32_s0.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 truncated")
    code = main([*ONE_RUN, "--out", str(out), *(["--resume"] if resume else [])])
    error = capsys.readouterr()
    if resume:
        assert code == 2
        assert str(checkpoint) in error.err and "Delete or move that file" in error.err
        assert checkpoint.read_bytes() == b"PK\x03\x04 truncated"  # untouched
        assert not (out / "runs").exists()
    else:
        assert code == 0
        assert str(checkpoint) in error.err and "set aside" in error.err
        aside = checkpoint.with_name("date_b32_s0.pt.corrupt-1")
        assert aside.read_bytes() == b"PK\x03\x04 truncated"
        assert strict_json(out / "runs" / "date_b32_s0.json")["status"] == "ok"


def test_records_and_reports_get_normal_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        assert main([*ONE_RUN, "--out", str(tmp_path / "o")]) == 0
    finally:
        os.umask(previous)
    for path in [tmp_path / "o" / "runs" / "date_b32_s0.json", tmp_path / "o" / "tables.md"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# ------------------------------------------------------------------------------------------
# Clear errors for a user's mistakes: exit 2, one message, nothing written
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "cuda"], "--device cuda: no CUDA device is visible"),
        (["--device", "tpu"], "--device tpu needs torch_xla"),
        (["--set", "model.hidden_size=0"], "model.hidden_size=0: out of range; must be an integer"),
        (["--set", "data.train_examples=0"], "data.train_examples=0: out of range; must be an"),
        (["--set", "data.train_examples=-5"], "train_examples=-5: out of range; must be an"),
        (["--set", "data.train_examples=20"], "less than one batch of 32"),
        (["--set", "lr=1e40"], "beyond float32's range"),
        (["--set", "run.checkpoint_every_minutes=-1"], "checkpoint_every_minutes=-1.0: must be"),
        (["--set", "run.evals_per_epoch=0"], "run.evals_per_epoch=0.0: must be a positive"),
        (["--data-dir", "."], "data file not found"),
    ],
)
def test_mistakes_exit_2_with_one_clear_line_and_write_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "o"
    assert main([*ONE_RUN, "--out", str(out), *extra]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1 and error.startswith("error: ")
    assert "Traceback" not in error and "data_dir=" not in error
    assert not out.exists()


def test_a_truncated_data_file_names_the_file_and_the_flag(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    for source in (REPO / "data" / "mnist").glob("*.gz"):
        (data / source.name).write_bytes(source.read_bytes())
    damaged = data / "train-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    assert main([*ONE_RUN, "--out", str(tmp_path / "o"), "--data-dir", str(data)]) == 2
    error = capsys.readouterr().err
    assert str(damaged) in error and "--data-dir" in error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "o").exists()


def test_seeds_sets_the_base_batch_seeds_too():
    full = ["mnist_lstm", "--preset", "full", "--methods", "date", "--batch-sizes", "128,256"]
    by_default = plan_runs(spec_for(full))
    assert [r.seed for r in by_default if r.batch_size == 128] == [0, 1, 2]  # preset: 3
    lowered = plan_runs(spec_for([*full, "--seeds", "1"]))
    assert [(r.batch_size, r.seed) for r in lowered] == [(128, 0), (256, 0)]


def test_the_printed_time_estimate_changes_nothing_a_run_records(tmp_path, capsys):
    """With --estimate a sweep first times a few steps to print its estimate: the records must be
    the same as a quiet run's (the timing uses a throw-away model under a forked RNG)."""
    loud = [arg for arg in ONE_RUN if arg != "--quiet"] + ["--estimate"]
    assert main([*loud, "--out", str(tmp_path / "loud")]) == 0
    assert "estimated training time of the 1 runs" in capsys.readouterr().out
    assert main([*ONE_RUN, "--out", str(tmp_path / "quiet")]) == 0
    assert capsys.readouterr().out == ""  # --quiet prints nothing
    first, second = (
        strict_json(tmp_path / name / "runs" / "date_b32_s0.json") for name in ("loud", "quiet")
    )
    for key in ("curves", "final", "micro_batches", "config_key"):
        assert first[key] == second[key], key
