"""Sweeps spread over workers: 2 parallel Ray workers give the sequential sweep's
records and report; a SIGKILLed job is resubmitted and resumes from its checkpoint; --shard I/N
covers the plan exactly once; a budget preset runs its tuning, then its sweep, as jobs; misuse
exits 2."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.cli.reports import REPORTS
from reproduce.harness.cli.run import main
from reproduce.harness.cli.tune import main as main_tune
from reproduce.harness.run.registry import experiments
from reproduce.harness.sweep import launch
from reproduce.harness.sweep.claims import Claim
from reproduce.harness.sweep.launch import Engine, LaunchSettings, launch_sweep, run_job
from reproduce.harness.sweep.planning import plan_runs, shard_runs
from reproduce.harness.sweep.progress import SweepProgress
from reproduce.harness.sweep.spec import SweepSpec

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["mnist_lstm", "--preset", "smoke", "--quiet"]
TIMING = {"env", "wall_seconds", "train_seconds", "seconds_to_target"}


def comparable(out: Path) -> dict[str, dict]:
    """Every record of ``out`` without what depends on the clock or the command line."""
    records = {}
    for path in sorted((out / "runs").glob("*.json")):
        record = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING}
        record["evals"] = [{k: v for k, v in e.items() if k != "seconds"} for e in record["evals"]]
        records[path.name] = record
    return records


def report_body(out: Path, name: str) -> str:
    """A report file below its provenance table (which names the command, dates and hashes)."""
    text = (out / name).read_text()
    return (
        text.split("| run commands", 1)[1].split("\n", 1)[1] if "| run commands" in text else text
    )


def assert_same_sweep(out: Path, reference: Path) -> None:
    assert comparable(out) == comparable(reference)  # curves, evals, final, config_key, status
    assert (out / "paper_diff.json").read_text() == (reference / "paper_diff.json").read_text()
    for name in ("tables.md", "paper_diff.md", "speedup.md"):
        assert report_body(out, name) == report_body(reference, name), name


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sequential")
    assert main([*SMOKE, "--out", str(out)]) == 0
    return out


def test_two_ray_workers_give_the_sequential_records_and_report(
    tmp_path, sequential, capsys, monkeypatch
):
    import ray  # noqa: F401  (the test extra installs it; a missing one fails)

    # Ray starts its workers at niceness 15 (its worker_niceness setting): on a machine busy with
    # other work they would wait minutes for a core. Normal priority, as the sequential sweep has.
    monkeypatch.setenv("RAY_worker_niceness", "0")
    out = tmp_path / "ray"
    argv = [*SMOKE[:-1], "--out", str(out), "--launcher", "ray", "--max-parallel", "2"]
    assert main([*argv, "--set", "launch.poll_seconds=0.2"]) == 0
    printed = capsys.readouterr().out
    assert "3 runs to train as ray jobs, at most 2 at once" in printed
    assert "sweep: 3/3 runs trained" in printed
    assert_same_sweep(out, sequential)
    assert not list((out / "claims").iterdir()), "every claim was released"
    shared = json.loads((out / "runs" / "date_b32_s0.json").read_text())
    assert shared["same_run_as"] == "sqrt_b32_s0.json"


# One run of 384 steps (as in test_checkpoint.py): long enough to be killed mid-way.
LONG_RUN = [
    "mnist_lstm", "--preset", "smoke", "--methods", "date", "--batch-sizes", "32", "--quiet",
    "--set", "epochs=3", "--set", "model.hidden_size=32", "--set", "data.train_examples=4096",
    "--set", "run.micro_batch_size=16", "--set", "run.checkpoint_every_epochs=0.05",
]  # fmt: skip


def kill_when_checkpointed(out: Path, run: str, signal_number: int, process=None) -> dict:
    """Start a thread that sends ``signal_number`` to the worker holding ``run``'s claim (or to
    the pid ``process``) once the run has a checkpoint; the dict it returns gets the pid."""
    killed: dict = {}

    def watch() -> None:
        checkpoint = out / "checkpoints" / f"{run}.pt"
        claim = out / "claims" / f"{run}.0.claim"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if checkpoint.exists() and claim.exists() and claim.read_text():
                killed["pid"] = process if process else json.loads(claim.read_text())["pid"]
                os.kill(killed["pid"], signal_number)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    killed["thread"] = thread
    return killed


def test_a_killed_job_is_resubmitted_and_resumes_from_its_checkpoint(tmp_path, capsys):
    """submitit's local executor (the SLURM launcher's code path): the job's process is
    SIGKILLed mid-run; the driver resubmits it, the new job breaks the dead worker's claim,
    continues the checkpoint, and ends bit-identical to an uninterrupted run."""
    import submitit  # noqa: F401  (the test extra installs it)

    reference = tmp_path / "uninterrupted"
    assert main([*LONG_RUN, "--out", str(reference)]) == 0
    out = tmp_path / "killed"
    killed = kill_when_checkpointed(out, "date_b32_s0", signal.SIGKILL)
    argv = [*(a for a in LONG_RUN if a != "--quiet"), "--out", str(out)]
    argv += ["--launcher", "local", "--max-parallel", "1", "--set", "launch.poll_seconds=0.2"]
    assert main(argv) == 0
    assert killed.get("pid") not in (None, os.getpid()), "the job was never killed"
    stdout = capsys.readouterr().out
    assert "ended without a record (its process ended without a result" in stdout
    assert "resubmitted" in stdout
    record = json.loads((out / "runs" / "date_b32_s0.json").read_text())
    assert record["resumed_from_step"] is not None and record["resumed_from_step"] > 0
    assert f"(resumed at step {record['resumed_from_step']})" in stdout
    expected = json.loads((reference / "runs" / "date_b32_s0.json").read_text())
    assert record["curves"] == expected["curves"]  # bitwise, every step
    assert [e["metrics"] for e in record["evals"]] == [e["metrics"] for e in expected["evals"]]
    assert record["final"] == expected["final"]
    assert not (out / "checkpoints" / "date_b32_s0.pt").exists()
    assert (out / "tables.md").is_file()


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_cover_the_plan_exactly_once_with_copies_beside_their_source(count):
    mnist = experiments()["mnist_lstm"]
    full = mnist.presets["full"]
    spec = SweepSpec(mnist, "full", full.methods, full.batch_sizes, full.seeds)
    planned = plan_runs(spec)
    assert any(run.same_run_as for run in planned)
    shards = [shard_runs(planned, index, count) for index in range(count)]
    names = [run.name for shard in shards for run in shard]
    assert sorted(names) == sorted(run.name for run in planned)  # every run, once
    for shard in shards:
        inside = {run.name for run in shard}
        assert all(run.same_run_as in inside for run in shard if run.same_run_as)
    sizes = [sum(run.same_run_as is None for run in shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1, "trained runs are dealt evenly"


def test_two_shards_give_the_sequential_sweep_and_the_last_writes_the_report(
    tmp_path, sequential, capsys
):
    out = tmp_path / "sharded"
    assert main([*SMOKE[:-1], "--out", str(out), "--shard", "0/2"]) == 0
    printed = capsys.readouterr().out
    assert "shard 0/2 of them: 3: 2 to train" in printed
    assert "1 planned runs are not recorded yet" in printed
    assert not (out / "tables.md").exists(), "a shard that is not the last writes no report"
    assert main([*SMOKE, "--out", str(out), "--shard", "1/2"]) == 0
    assert_same_sweep(out, sequential)


def test_a_shard_continues_a_stopped_shards_checkpoint_without_resume(tmp_path):
    """What a job array's retried task does: the checkpoint made with this run's configuration
    is continued (no --resume needed), while the sequential path still needs --resume."""
    out = tmp_path / "o"
    argv = [*LONG_RUN, "--set", "epochs=1", "--out", str(out), "--shard", "0/1"]
    killed = kill_when_checkpointed(out, "date_b32_s0", signal.SIGTERM, process=os.getpid())
    assert main(argv) == 128 + signal.SIGTERM  # checkpointed, then stopped
    killed["thread"].join()
    assert main(argv) == 0
    record = json.loads((out / "runs" / "date_b32_s0.json").read_text())
    assert record["resumed_from_step"] > 0


class InProcessEngine(Engine):
    """Runs each job in this process when it is submitted: the phases of a budget sweep, without
    the cost of starting an engine (Ray and submitit are exercised above)."""

    def submit(self, jobs, settings):
        return [Ended(run_job(job.spec, job.group, settings.cpus_per_run)) for job in jobs]

    def ready(self, handles, timeout):
        return list(handles)

    def result(self, handle):
        return handle.outcome


class Ended:
    def __init__(self, outcome: dict) -> None:
        self.outcome = outcome


def launch_tiny_budget(
    monkeypatch, out: Path, preset, tuning_grid: dict
) -> tuple[list[str], list[dict]]:
    """mnist_lstm with ``preset`` (smoke-sized, budgets 1 and 2 epochs) launched as in-process
    jobs at budget E = 2; the log lines and E2's records."""
    mnist = experiments()["mnist_lstm"]
    tiny = dataclasses.replace(
        mnist,
        presets={**mnist.presets, preset.name: preset},
        tuning_grid=tuning_grid,
        time_to_target=dataclasses.replace(mnist.time_to_target, value=0.05),  # reached
    )
    monkeypatch.setitem(experiments(), "mnist_lstm", tiny)
    argv = ["mnist_lstm", "--preset", preset.name, "--set", "epochs=2", "--out", str(out)]
    spec = build_spec(build_parser().parse_args(argv), argv)
    lines: list[str] = []
    result = launch_sweep(
        spec,
        LaunchSettings("local", max_parallel=2),
        lines.append,
        lambda *a: InProcessEngine(),
        reports=REPORTS,
    )
    assert result.failed == {}
    assert not (out / "E1").exists() and (out / "budgets.md").is_file()
    records = [json.loads(p.read_text()) for p in (out / "E2" / "runs").glob("*.json")]
    return lines, records


def tiny_budget_preset(name: str, **changes):
    smoke = experiments()["mnist_lstm"].presets["smoke"]
    return dataclasses.replace(
        smoke, name=name, budgets=(1, 2), methods=("sqrt", "date"), **changes
    )


def test_a_budget_preset_runs_its_tuning_then_its_sweep_as_jobs(tmp_path, monkeypatch):
    out = tmp_path / "budget"
    preset = tiny_budget_preset("budget")
    lines, records = launch_tiny_budget(monkeypatch, out, preset, {"lr": (0.05, 0.1)})
    phase_one = lines.index("phase 1 of 2: tuning runs of every budget (2 grid points)")
    assert lines.index("phase 2 of 2: the sweep at every budget with its tuned base recipe") > (
        phase_one
    )
    tuning = json.loads((out / "E2" / "tuning" / "tuning.json").read_text())
    assert len(records) == 4
    assert {r["base_recipe"]["lr"] for r in records} == {tuning["best"]["point"]["lr"]}
    assert (out / "E2" / "tables.md").is_file()


def test_an_untuned_budget_preset_launches_its_sweeps_without_a_tuning_phase(tmp_path, monkeypatch):
    out = tmp_path / "full_budget"
    preset = tiny_budget_preset("full_budget", tune_budgets=False)
    lines, records = launch_tiny_budget(monkeypatch, out, preset, {})
    assert not any(line.startswith("phase") for line in lines)
    assert not (out / "E2" / "tuning").exists()
    base_lr = experiments()["mnist_lstm"].recipe_for("full_budget", {}).lr
    assert len(records) == 4
    assert {(r["base_recipe"]["lr"], r["recipe"]["epochs"]) for r in records} == {(base_lr, 2)}


def test_progress_line_counts_running_and_failed_and_shares_the_eta():
    sweep = SweepProgress(total=4, remaining_examples=400.0, parallel=2)
    sweep.running = 2
    sweep.finished("ok", examples=100.0, seconds=10.0)
    assert sweep.line() == "sweep: 1/4 runs trained, 2 running, about 15s left"
    sweep.gave_up(examples=100.0)
    sweep.finished("diverged", examples=100.0, seconds=10.0)
    # 1 run left for 2 workers: it takes one worker's time
    assert (
        sweep.line() == "sweep: 2/4 runs trained, 2 running, 1 diverged, 1 failed, about 10s left"
    )
    assert SweepProgress(total=3).line() == "sweep: 0/3 runs trained", "the sequential line"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "2/2"], "--shard 2/2: expected I/N with 0 <= I < N"),
        (["--shard=-1/2"], "0 <= I < N"),
        (["--shard", "1/0"], "0 <= I < N"),
        (["--shard", "a/b"], "0 <= I < N"),
        (["--shard", "1"], "0 <= I < N"),
        (["--max-parallel", "2"], "--max-parallel need --launcher"),
        (["--set", "launch.cpus_per_run=2"], "--set launch. need --launcher"),
        (["--launcher", "local", "--max-parallel", "0"], "--max-parallel 0: must be a positive"),
        (["--launcher", "local", "--shard", "0/2"], "--shard and --launcher exclude each other"),
        (["--launcher", "local", "--set", "launch.gpus=1"], "valid: launch.cpus_per_run"),
        (["--launcher", "local", "--set", "launch.cpus_per_run=0"], "must be a positive"),
        (["--launcher", "ray", "--device", "tpu"], ""),  # tpu unavailable here, or refused
        (["--preset", "budget", "--shard", "0/2"], "use --launcher"),
    ],
)
def test_launcher_and_shard_misuse_exits_2_and_writes_nothing(extra, message, tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*SMOKE[:-3], *extra, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_engine_names_the_extra_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    for engine in ("ray", "local"):
        out = tmp_path / engine
        assert main([*SMOKE, "--out", str(out), "--launcher", engine]) == 2
        error = capsys.readouterr().err
        assert "not installed; install the cluster extra" in error and ".[cluster]" in error
        assert not out.exists()


def test_slurm_without_its_commands_is_refused(tmp_path, monkeypatch, capsys):
    import submitit  # noqa: F401  (the test extra installs it)

    monkeypatch.setattr(launch.shutil, "which", lambda name: None)
    out = tmp_path / "o"
    assert main([*SMOKE, "--out", str(out), "--launcher", "slurm"]) == 2
    assert "sbatch and srun not on PATH" in capsys.readouterr().err
    assert not out.exists()


def test_one_after_another_a_run_claimed_by_a_live_worker_is_left_to_it(tmp_path, capsys):
    """Two plain commands on one --out (the two lanes of a full_sweep.sh): a run the other
    holds is skipped, the rest is trained, and a rerun once it is released trains it."""
    out = tmp_path / "o"
    argv = [*SMOKE[:-1], "--methods", "date", "--out", str(out)]
    other = Claim(out / "claims", "date_b128_s0")  # held by a live process: this one
    assert other.acquire()
    try:
        assert main(argv) == 0
    finally:
        other.release()
    printed = capsys.readouterr().out
    assert f"date b=128 seed=0: being trained by {socket.gethostname()} pid {os.getpid()}" in (
        printed
    )
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["date_b32_s0.json"]
    assert main(argv) == 0
    assert (out / "runs" / "date_b128_s0.json").is_file()


def test_tune_refuses_launcher_flags(tmp_path, capsys):
    assert main_tune(["mnist_lstm", "--launcher", "ray", "--out", str(tmp_path / "o")]) == 2
    assert "run.py EXPERIMENT --preset budget --launcher" in capsys.readouterr().err


def test_a_job_waits_for_a_live_claim_then_trains_the_run_once_it_is_free(tmp_path, capsys):
    """A resubmitted job whose run is still held by a live worker (the old attempt, on another
    node) waits rather than training it twice, and takes it over once the claim is free."""
    out = tmp_path / "o"
    argv = [*SMOKE, "--methods", "date", "--batch-sizes", "128", "--out", str(out)]
    spec = build_spec(build_parser().parse_args(argv), argv)
    (group,) = launch.run_groups(plan_runs(spec))
    holder = Claim(out / "claims", "date_b128_s0")
    assert holder.acquire()
    outcome: dict = {}
    job = threading.Thread(target=lambda: outcome.update(run_job(spec, group, 1, 0.05)))
    job.start()
    deadline = time.monotonic() + 60
    while "waiting for its record" not in capsys.readouterr().out:
        assert time.monotonic() < deadline and job.is_alive(), outcome
        time.sleep(0.05)
    assert not (out / "runs" / "date_b128_s0.json").exists()
    holder.release()
    job.join(timeout=120)
    assert outcome["trained"] and outcome["status"] == "ok"
    assert (out / "runs" / "date_b128_s0.json").is_file()
