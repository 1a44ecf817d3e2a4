"""Harness hooks added for experiments whose full metric means nothing at a reduced size (gnmt's
BLEU): a preset may be judged by its own metric (records, band floor, claims then not applicable),
an experiment may name its default preset, and record_info adds per-run facts to each record."""

from __future__ import annotations

import dataclasses
import json

import pytest

from reproduce.harness.cli.reports import REPORTS
from reproduce.harness.run.experiment import Preset
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.sweep.running import run_sweep
from reproduce.harness.sweep.spec import SweepSpec


def test_a_preset_judged_by_its_own_metric_records_it_and_sets_claims_aside(tmp_path):
    mnist = get_experiment("mnist_lstm")
    smoke = dataclasses.replace(
        mnist.presets["smoke"], primary_metric="loss", mode="min", band_floor=0.05
    )
    seen = []

    def record_info(data, recipe):
        seen.append(recipe.batch_size)
        return {"batch_seen": recipe.batch_size, "train": data.info["train"]}

    variant = dataclasses.replace(
        mnist, presets={**mnist.presets, "smoke": smoke}, record_info=record_info
    )
    assert variant.metric_for("smoke") == ("loss", "min", 0.05)
    assert variant.metric_for("quick") == ("accuracy", "max", mnist.band_floor)
    batch = smoke.batch_sizes[0]
    spec = SweepSpec(
        experiment=variant,
        preset="smoke",
        methods=("date",),
        batch_sizes=(batch,),
        seeds=1,
        out_dir=tmp_path,
        progress=False,
    )
    run_sweep(spec, log=lambda message: None, reports=REPORTS)
    record = json.loads((tmp_path / "runs" / f"date_b{batch}_s0.json").read_text())
    assert (record["primary_metric"], record["mode"]) == ("loss", "min")
    assert record["experiment_info"] == {"batch_seen": batch, "train": record["data"]["train"]}
    assert seen == [batch]
    diff = json.loads((tmp_path / "paper_diff.json").read_text())
    claims = [row for row in diff["rows"] if row["kind"] == "claim"]
    assert claims and all(row["verdict"] == "not applicable" for row in claims)
    assert "judged by 'loss'" in claims[0]["note"]


def test_preset_metric_and_mode_come_together():
    with pytest.raises(ValueError, match="set primary_metric and mode together"):
        Preset(name="quick", batch_sizes=(8,), primary_metric="loss")
    with pytest.raises(ValueError, match="mode must be"):
        Preset(name="quick", batch_sizes=(8,), primary_metric="loss", mode="lower")


def test_default_preset_is_the_experiments():
    assert get_experiment("gnmt").default_preset == "full"
    assert get_experiment("mnist_lstm").default_preset == "quick"
    with pytest.raises(ValueError, match="default_preset"):
        dataclasses.replace(get_experiment("mnist_lstm"), default_preset="huge")
