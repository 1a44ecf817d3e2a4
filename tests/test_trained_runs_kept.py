"""A trained run is never lost: its final checkpoint is on disk before the final evaluation; an
evaluation that raises leaves a record saying so (not a result) and a checkpoint that finishes
the run without retraining; a write the output folder refuses is retried, then rescued."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch

from reproduce.harness.cli.run import main
from reproduce.harness.run.registry import experiments

ONE_RUN = ["mnist_lstm", "--preset", "smoke", "--quiet", "--methods", "date", "--batch-sizes", "32"]
NAME = "date_b32_s0"
#: What may differ between a resumed run's record and an uninterrupted one's: timings, the
#: environment (its date), and the step it resumed from.
VOLATILE = {"wall_seconds", "train_seconds", "env", "resumed_from_step", "seconds_to_target"}


#: The registry's mnist_lstm before any test replaced it (monkeypatch restores it after each).
PRISTINE: dict = {}


def instrumented(monkeypatch, fail_split: str | None = None, fail_call: int = 1, on_loss=None):
    """Replace mnist_lstm by a copy whose ``fail_split`` evaluation ("valid" or "test") raises at
    its ``fail_call``-th call, and which counts training losses (``on_loss(count)`` per call)."""
    experiment = PRISTINE.setdefault("mnist_lstm", experiments()["mnist_lstm"])
    real_build, real_evaluate, real_loss = (
        experiment.build_data,
        experiment.evaluate,
        experiment.loss,
    )
    counts = {"valid": 0, "test": 0, "loss": 0}
    test_splits: set[int] = set()

    def build_data(source, data_dir, config):
        bundle = real_build(source, data_dir, config)
        test_splits.add(id(bundle.test))
        return bundle

    def evaluate(model, split, device, batch_size):
        which = "test" if id(split) in test_splits else "valid"
        counts[which] += 1
        if which == fail_split and counts[which] == fail_call:
            raise IndexError("argmax(): Expected reduction dim 1 to have non-zero size.")
        return real_evaluate(model, split, device, batch_size)

    def loss(model, batch, state):
        counts["loss"] += 1
        if on_loss is not None:
            on_loss(counts["loss"])
        return real_loss(model, batch, state)

    monkeypatch.setitem(
        experiments(),
        "mnist_lstm",
        dataclasses.replace(experiment, build_data=build_data, evaluate=evaluate, loss=loss),
    )
    return counts


def result_of(record: dict) -> dict:
    """A record without what legitimately differs between two runs of the same command."""
    kept = {key: value for key, value in record.items() if key not in VOLATILE}
    kept["evals"] = [
        {key: value for key, value in entry.items() if key != "seconds"}
        for entry in record["evals"]
    ]
    return kept


def reference_record(tmp_path: Path, extra: list[str]) -> dict:
    out = tmp_path / "reference"
    assert main([*ONE_RUN, *extra, "--out", str(out)]) == 0
    return json.loads((out / "runs" / f"{NAME}.json").read_text())


def test_the_trained_state_is_on_disk_before_the_final_evaluation(tmp_path, monkeypatch):
    out = tmp_path / "o"
    seen = {}
    experiment = experiments()["mnist_lstm"]
    real_evaluate = experiment.evaluate

    def evaluate(model, split, device, batch_size):
        path = out / "checkpoints" / f"{NAME}.pt"
        if path.exists():
            seen["checkpoint"] = torch.load(path, weights_only=True)
        return real_evaluate(model, split, device, batch_size)

    monkeypatch.setitem(
        experiments(), "mnist_lstm", dataclasses.replace(experiment, evaluate=evaluate)
    )
    assert main([*ONE_RUN, "--out", str(out)]) == 0
    state = seen["checkpoint"]  # present while the trained model was evaluated
    assert state["trained"] is True
    assert (
        state["progress"]["step"]
        == json.loads((out / "runs" / f"{NAME}.json").read_text())["total_steps"]
    )
    assert not (out / "checkpoints" / f"{NAME}.pt").exists()  # removed once recorded


def test_a_failing_final_evaluation_keeps_the_run_and_resume_only_evaluates_it(
    tmp_path, monkeypatch, capsys
):
    """The issue's gnmt data.beam_size=0 case, on the smallest run: the final beam search raised
    after the whole run had trained, and the run was gone."""
    reference = reference_record(tmp_path, [])
    out = tmp_path / "o"
    counts = instrumented(monkeypatch, fail_split="test")
    assert main([*ONE_RUN, "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert "1 run trained but an evaluation failed" in error
    assert "test evaluation after step 16: IndexError: argmax()" in error
    assert "--resume" in error
    assert not list((out / "runs").glob("*.json"))  # not a result
    unfinished = json.loads((out / "unfinished" / f"{NAME}.json").read_text())
    assert unfinished["status"] == "evaluation_failed"
    assert unfinished["final"] == {}
    assert unfinished["evaluation_error"]["split"] == "test"
    assert unfinished["finish_command"].endswith("--resume")
    checkpoint = Path(unfinished["checkpoint"])
    assert checkpoint == out / "checkpoints" / f"{NAME}.pt" and checkpoint.is_file()
    assert counts["loss"] == 16

    counts = instrumented(monkeypatch)  # the cause is fixed
    assert main([*ONE_RUN, "--out", str(out), "--resume"]) == 0
    assert counts["loss"] == 0  # nothing retrained
    record = json.loads((out / "runs" / f"{NAME}.json").read_text())
    assert record["status"] == "ok"
    assert record["resumed_from_step"] == record["total_steps"]
    assert result_of(record) == result_of(reference)
    assert not checkpoint.exists()
    assert not (out / "unfinished" / f"{NAME}.json").exists()


def test_a_trained_checkpoint_is_evaluated_by_the_same_command_without_resume(
    tmp_path, monkeypatch
):
    out = tmp_path / "o"
    instrumented(monkeypatch, fail_split="test")
    assert main([*ONE_RUN, "--out", str(out)]) == 1
    counts = instrumented(monkeypatch)
    assert main([*ONE_RUN, "--out", str(out)]) == 0
    assert counts["loss"] == 0
    assert json.loads((out / "runs" / f"{NAME}.json").read_text())["status"] == "ok"


def test_a_failing_validation_mid_run_resumes_with_that_evaluation_bit_identically(
    tmp_path, monkeypatch, capsys
):
    """Evaluations after steps 4, 8, 12 and 16; the one after step 8 raises. The state after
    step 8 is saved; the resumed run evaluates it first and ends as the uninterrupted run."""
    four_evals = ["--set", "run.evals_per_epoch=4"]
    reference = reference_record(tmp_path, four_evals)
    out = tmp_path / "o"
    counts = instrumented(monkeypatch, fail_split="valid", fail_call=2)
    assert main([*ONE_RUN, *four_evals, "--out", str(out)]) == 1
    assert "valid evaluation after step 8" in capsys.readouterr().err
    state = torch.load(out / "checkpoints" / f"{NAME}.pt", weights_only=True)
    assert state["trained"] is False and state["progress"]["step"] == 8
    assert [entry["step"] for entry in state["progress"]["evals"]] == [4]
    assert counts["loss"] == 8

    counts = instrumented(monkeypatch)
    assert main([*ONE_RUN, *four_evals, "--out", str(out), "--resume"]) == 0
    assert counts["loss"] == 8  # steps 8 to 15 only
    record = json.loads((out / "runs" / f"{NAME}.json").read_text())
    assert [entry["step"] for entry in record["evals"]] == [4, 8, 12, 16]
    assert result_of(record) == result_of(reference)


def test_an_out_folder_that_breaks_during_training_keeps_the_run_in_a_rescue_folder(
    tmp_path, monkeypatch, capsys
):
    """The output folder is replaced by a file mid-run (as root, a chmod would not stop the
    writes): checkpoints and the record are retried, then written to the rescue folder; one
    message says where, no traceback; copied back, the same command finds the run recorded."""
    from reproduce.harness.run import rescue

    monkeypatch.setattr(rescue, "RETRY_DELAYS", (0.0,))
    monkeypatch.setenv(rescue.RESCUE_ENV, str(tmp_path / "rescue"))
    out, moved = tmp_path / "o", tmp_path / "o-moved"

    def break_out(count: int) -> None:
        if count == 6:
            out.rename(moved)
            out.write_text("no longer a folder")

    instrumented(monkeypatch, on_loss=break_out)
    argv = [*ONE_RUN, "--out", str(out), "--set", "run.checkpoint_every_epochs=0.25"]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "Traceback" not in error
    folder = rescue.rescue_folder(out, tmp_path / "rescue")
    record_path = folder / "runs" / f"{NAME}.json"
    assert f"error: cannot write to {out}: the record of {NAME}.json is saved at {record_path}" in (
        error
    )
    assert "cp -r" in error
    record = json.loads(record_path.read_text())
    assert record["status"] == "ok" and record["final"]["accuracy"] > 0
    state = torch.load(folder / "checkpoints" / f"{NAME}.pt", weights_only=True)
    assert state["trained"] is True  # the trained state too

    out.unlink()
    moved.rename(out)
    shutil.copytree(folder, out, dirs_exist_ok=True)
    counts = instrumented(monkeypatch)
    assert main([*ONE_RUN, "--out", str(out), "--set", "run.checkpoint_every_epochs=0.25"]) == 0
    assert counts["loss"] == 0  # already recorded


def test_a_brief_write_fault_is_retried_in_place(tmp_path):
    from reproduce.harness.run.rescue import write_or_rescue

    attempts = []

    def write(path: Path) -> None:
        attempts.append(path)
        if len(attempts) == 1:
            raise OSError(5, "Input/output error")
        path.write_text("written")

    target = tmp_path / "out" / "runs" / "r.json"
    target.parent.mkdir(parents=True)
    written = write_or_rescue(target, write, tmp_path / "out", "run record", retry_delays=(0.0,))
    assert written.path == target and written.rescue is None
    assert attempts == [target, target] and target.read_text() == "written"


def test_tune_and_advise_keep_a_run_whose_evaluation_fails_and_say_so(
    tmp_path, monkeypatch, capsys
):
    """Every entry point that trains ends with the same one message (exit 1), not a traceback."""
    from reproduce.harness.cli.advise import main as main_advise
    from reproduce.harness.cli.tune import main as main_tune

    instrumented(monkeypatch, fail_split="test")
    smoke = ["mnist_lstm", "--preset", "smoke", "--quiet"]
    for entry, script, out in ((main_tune, "tune.py", "tune"), (main_advise, "advise.py", "a")):
        argv = [*smoke, "--set", "lr=0.1", "--out", str(tmp_path / out)]
        instrumented(monkeypatch, fail_split="test")
        assert entry(argv) == 1
        error = capsys.readouterr().err
        assert "Traceback" not in error
        assert "1 run trained but an evaluation failed" in error
        assert f"python reproduce/{script} {' '.join(argv)} --resume" in error
        (unfinished,) = (tmp_path / out).rglob("unfinished/*.json")
        counts = instrumented(monkeypatch)  # fixed: its own command finishes it
        assert entry([*argv, "--resume"]) == 0
        assert counts["loss"] == 0
        assert not unfinished.exists()
