"""The gnmt experiment end to end: the smoke preset memorizes its 64 newstest2014 pairs (BLEU > 90,
beam and greedy) and records the sacreBLEU signatures and tokens per batch; without WMT16 the
default preset exits 2 saying what to provide; --plan works without the data; the loss hook gives
the same update whatever the micro-batch; the quick preset is judged by token NLL."""

from __future__ import annotations

import json

import pytest
import torch

from reproduce.gnmt import experiment as gnmt
from reproduce.harness.cli.run import main
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.trainer import accumulate_gradients


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory):
    """The smoke preset with gnmt.MEMORIZE (its width 256, 600 steps of 16 pairs) at its base
    batch."""
    out = tmp_path_factory.mktemp("gnmt_smoke")
    cache = tmp_path_factory.mktemp("subword_cache")
    argv = ["gnmt", "--preset", "smoke", "--batch-sizes", "16", "--methods", "date"]
    overrides = [
        f"{key}={','.join(map(str, value)) if isinstance(value, tuple) else value}"
        for key, value in gnmt.MEMORIZE.items()
    ]
    overrides.append(f"data.subword_cache={cache}")
    sets = [item for override in overrides for item in ("--set", override)]
    assert main([*argv, *sets, "--out", str(out), "--quiet"]) == 0
    return json.loads((out / "runs" / "date_b16_s0.json").read_text())


def test_smoke_model_reproduces_its_64_training_pairs(smoke_record):
    final = smoke_record["final"]
    assert smoke_record["status"] == "ok" and smoke_record["data"]["train"] == 64
    assert final["bleu"] > 90, final
    assert final["bleu_greedy"] > 90, final
    assert final["bleu_uncased"] > 90, final


def test_records_carry_bleu_signatures_tokens_per_batch_and_filter_counts(smoke_record):
    info = smoke_record["experiment_info"]
    assert info["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    assert info["bleu_uncased_signature"].startswith("nrefs:1|case:lc|eff:no|tok:intl")
    tokens = info["tokens_per_batch"]
    assert 0 <= tokens["padding_fraction"] < 0.5
    lengths = smoke_record["data"]["train_lengths"]
    expected = 16 * (lengths["source_mean"] + lengths["target_mean"])
    measured = tokens["source_tokens_per_batch"] + tokens["target_tokens_per_batch"]
    assert measured == pytest.approx(expected, rel=1e-6)  # 4 batches: exactly one epoch
    assert smoke_record["total_steps"] == 600
    counts = smoke_record["data"]["train_filter"]
    assert counts["total"] == 1500 and counts["kept"] >= 64
    assert counts["kept"] + counts["too_long"] + counts["empty"] == counts["total"]


def test_default_preset_without_wmt16_exits_2_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["gnmt", "--out", str(out)]) == 2
    message = capsys.readouterr().err
    for expected in (
        "train.en",
        "--data-dir",
        "wmt/wmt16",
        "save_to_disk",
        "--preset smoke",
        "--plan --preset full",
    ):
        assert expected in message
    assert not out.exists()
    assert main(["gnmt", "--data-dir", str(tmp_path), "--out", str(out)]) == 2
    assert f"looked in {tmp_path}" in capsys.readouterr().err
    assert not out.exists()


def test_plan_without_the_data_uses_the_reference_warmup(capsys):
    # a small model: the table is the recipe's; --plan's timing of the full model takes minutes
    # (its vocabulary as small as the subwords', which the model needs an output for each of)
    small = ["--set", "model.hidden_size=32", "--set", "model.vocab_size=512"]
    small += ["--set", "data.vocab_size=512"]
    assert main(["gnmt", "--plan", "--methods", "date", "--batch-sizes", "1024,16384", *small]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines
        if line.startswith("| date")
    ]
    assert [row["batch"] for row in rows] == ["1024"] * 3 + ["16384"]  # 3 base seeds, 1 at x16
    # 200 warmup steps at batch 1024 (train.py --warmup-steps 200), the same number at x16 (DATE)
    assert {float(row["warmup steps"]) for row in rows} == {200.0}
    assert float(rows[-1]["peak lr"]) == pytest.approx(2e-3 * 4)


def test_reference_schedule_maps_onto_the_recipe():
    recipe = gnmt.GNMT_RECIPE
    assert recipe.milestones == pytest.approx((3.996, 4.497, 4.998, 5.499))
    assert recipe.milestone_factor == 0.5 and recipe.lr == 2e-3 and recipe.grad_clip_norm == 5.0
    steps_per_epoch = 4_548_885 / 1024
    assert recipe.warmup_epochs * steps_per_epoch == pytest.approx(200)


def test_micro_batches_give_the_update_of_one_batch():
    """The loss hook trims each micro-batch to its own longest pair; the summed loss over
    micro-batches divided by the pairs is the same update as the whole batch at once."""
    from reproduce.gnmt.data import EncodedPairs
    from reproduce.harness.run.experiment import Batch

    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 12, (8, 2), generator=generator)
    sources = [
        [2, *torch.randint(4, 50, (int(n),), generator=generator).tolist(), 3]
        for n in lengths[:, 0]
    ]
    targets = [
        [2, *torch.randint(4, 50, (int(n),), generator=generator).tolist(), 3]
        for n in lengths[:, 1]
    ]
    batch: Batch = EncodedPairs(sources, targets).batch(torch.arange(8).numpy())
    config = {**gnmt.MODEL_DEFAULTS, "vocab_size": 50, "hidden_size": 16, "dropout": 0.0}
    device = resolve_device("cpu")
    gradients = []
    for micro in (8, 2):
        torch.manual_seed(0)
        model = gnmt.build_model(config)
        _, items = accumulate_gradients(gnmt.EXPERIMENT, model, batch, micro, {}, device)
        assert items == 8  # sentence pairs, the reference's normalization
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-4, atol=1e-6)


def test_quick_preset_is_judged_by_token_nll_and_the_claim_does_not_apply():
    assert gnmt.EXPERIMENT.metric_for("quick") == ("nll", "min", 0.02)
    assert gnmt.EXPERIMENT.metric_for("full") == ("bleu", "max", 0.3)
    quick = gnmt.EXPERIMENT.presets["quick"]
    assert not quick.data["bleu"] and set(quick.methods) == set(__import__("date").METHODS)
    assert max(quick.batch_sizes) == 16 * min(quick.batch_sizes)
