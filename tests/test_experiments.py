"""Every registered experiment: its smoke preset runs end to end on CPU and writes a valid record,
table and plot (parametrized over the registry, so a new experiment is tested when it is added)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reproduce.harness.cli.run import main
from reproduce.harness.run.experiment import OPTIONAL_PRESET_NAMES, PRESET_NAMES
from reproduce.harness.run.registry import experiments

REQUIRED_FIELDS = {
    "experiment",
    "method",
    "batch_size",
    "seed",
    "status",
    "final",
    "steps_to_target",
    "seconds_to_target",
    "model_parameters",
    "recipe",
    "env",
    "curves",
    "evals",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", list(experiments()))
def test_presets_are_complete_and_valid(name):
    experiment = experiments()[name]
    assert set(PRESET_NAMES) <= set(experiment.presets) <= {*PRESET_NAMES, *OPTIONAL_PRESET_NAMES}
    for preset in experiment.presets.values():
        base = experiment.recipe_for(preset.name)
        assert base.batch_size in preset.batch_sizes, "the sweep must include its base batch"
    for target in experiment.targets:
        assert target.mode in ("min", "max") and target.source and target.status


@pytest.mark.parametrize("name", list(experiments()))
def test_smoke_preset_end_to_end(name, tmp_path):
    out = tmp_path / name
    assert main([name, "--preset", "smoke", "--out", str(out), "--quiet"]) == 0
    experiment = experiments()[name]
    preset = experiment.presets["smoke"]
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert len(records) >= len(preset.methods) * len(preset.batch_sizes)
    for record in records:
        assert set(record) >= REQUIRED_FIELDS
        assert record["status"] == "ok"
        assert record["experiment"] == name
        assert experiment.primary_metric in record["final"]
        assert len(record["curves"]["loss"]) == record["total_steps"]
        assert record["env"]["git_commit"] is None or len(record["env"]["git_commit"]) == 40
        assert record["model_parameters"] > 0
    for generated in ("tables.md", "paper_diff.md", "paper_diff.json", "speedup.md"):
        assert (out / generated).stat().st_size > 0, generated
    coverage = json.loads((out / "summary.json").read_text())["coverage"]
    assert coverage["missing"] == [] and coverage["recorded"] == coverage["planned"] == len(records)
    assert f"All {len(records)} planned runs" in (out / "tables.md").read_text()
    pngs = list((out / "plots").glob("*.png"))
    assert pngs
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_rerun_skips_recorded_runs(tmp_path, capsys):
    out = tmp_path / "o"
    argv = [
        "mnist_lstm",
        "--preset",
        "smoke",
        "--methods",
        "date",
        "--batch-sizes",
        "32",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    before = (out / "runs" / "date_b32_s0.json").read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    assert "already recorded" in capsys.readouterr().out
    assert (out / "runs" / "date_b32_s0.json").read_bytes() == before


def test_same_recipe_at_base_batch_is_trained_once_and_shared(tmp_path):
    out = tmp_path / "o"
    argv = ["mnist_lstm", "--preset", "smoke", "--methods", "sqrt,date", "--batch-sizes", "32"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    sqrt = json.loads((out / "runs" / "sqrt_b32_s0.json").read_text())
    shared = json.loads((out / "runs" / "date_b32_s0.json").read_text())
    assert shared["same_run_as"] == "sqrt_b32_s0.json"
    assert shared["final"] == sqrt["final"] and shared["method"] == "date"
    # the report says the sweep is partial: the smoke preset's other batches were not run
    coverage = json.loads((out / "summary.json").read_text())["coverage"]
    smoke = experiments()["mnist_lstm"].presets["smoke"]
    others = sorted(b for b in smoke.batch_sizes if b != 32)
    assert others and coverage["recorded"] == 2
    assert coverage["missing_by_method"]["date"] == [str(b) for b in others]
    assert coverage["missing_trained"] == len(smoke.methods) * len(others)
    assert coverage["mean_train_seconds"] == sqrt["train_seconds"]
    assert "Partial sweep: 2 of the" in (out / "tables.md").read_text()


def test_same_seed_gives_the_same_run(tmp_path):
    argv = [
        "mnist_lstm",
        "--preset",
        "smoke",
        "--methods",
        "date",
        "--batch-sizes",
        "128",
        "--quiet",
    ]
    runs = []
    for folder in ("a", "b"):
        assert (
            main([*argv, "--out", str(tmp_path / folder), "--set", "run.micro_batch_size=64"]) == 0
        )
        runs.append(json.loads((tmp_path / folder / "runs" / "date_b128_s0.json").read_text()))
    assert runs[0]["curves"]["loss"] == runs[1]["curves"]["loss"]
    assert runs[0]["final"] == runs[1]["final"]


def test_data_path_is_reported(tmp_path):
    out: Path = tmp_path / "o"
    argv = [
        "mnist_lstm",
        "--preset",
        "smoke",
        "--methods",
        "date",
        "--batch-sizes",
        "32",
        "--quiet",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    record = json.loads((out / "runs" / "date_b32_s0.json").read_text())
    assert record["data"]["source"] == "local"
    assert record["data"]["train"] == 512


def test_without_a_terminal_each_evaluation_is_logged_and_quiet_silences_it(tmp_path, capsys):
    argv = ["mnist_lstm", "--preset", "smoke", "--methods", "date", "--batch-sizes", "32"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if " step " in line]
    record = json.loads((tmp_path / "a" / "runs" / "date_b32_s0.json").read_text())
    assert len(lines) == len(record["evals"]) > 0  # one line per evaluation, under pytest's pipe
    last = record["evals"][-1]
    assert f"step {last['step']}/{record['total_steps']}" in lines[-1]
    assert f"accuracy={last['metrics']['accuracy']:.4g}" in lines[-1]
    assert main([*argv, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert " step " not in capsys.readouterr().err


FULL_SWEEP_SCRIPTS = sorted(Path(__file__).parents[1].glob("reproduce/*/full_sweep.sh"))


@pytest.mark.parametrize("script", FULL_SWEEP_SCRIPTS, ids=lambda path: path.parent.name)
def test_full_sweep_script_covers_the_full_preset(script):
    """Each lane's `run --batch-sizes B --methods "$1"|"$2"` lines, applied to the `lane K BASE`
    calls, give every (method, batch) of the full preset, for the script's own experiment."""
    import re

    import date

    text = script.read_text()
    name = script.parent.name
    # every run continues from its checkpoint when rerun: a killed lane loses minutes, not a run
    assert re.search(rf"reproduce/run\.py {name} --preset full --out \S+ --resume ", text)
    runs = re.findall(r'run --batch-sizes ([\d,]+) --methods "\$(\d)"', text)
    lanes = re.findall(r"^lane ([\w,-]+) ([\w,-]+) &$", text, flags=re.MULTILINE)
    assert runs and lanes
    covered = set()
    for lane_methods in lanes:
        for batches, argument in runs:
            for method in lane_methods[int(argument) - 1].split(","):
                covered |= {(date.canonical_method(method), int(b)) for b in batches.split(",")}
    full = experiments()[name].presets["full"]
    assert covered == {(m, b) for m in full.methods for b in full.batch_sizes}
    assert f"reproduce/report.py results/{name}/full" in text
