"""The imagenet_resnet50 experiment: torchvision's exact ResNet-50, the options users expect, LARS
as the NUS recipe applies it, --plan reproducing the NUS table from the base recipe alone, and the
clear exit when ImageNet is not there."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import date
from reproduce.datasets import imagenet
from reproduce.harness.cli.arguments import build_parser, build_spec
from reproduce.harness.cli.run import main
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.experiment import Batch
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients
from reproduce.harness.sweep.planning import plan_runs, run_key
from reproduce.imagenet_resnet50 import experiment as definition
from reproduce.imagenet_resnet50.model import model_inputs

EXPERIMENT = get_experiment("imagenet_resnet50")

#: NUS-HPC-AI-Lab/LARS-ImageNet-PyTorch README: batch -> (base LR, warmup epochs), 512 ... 8K,
#: and what DATE gives at the other batches of the sweep (lr 2^2 x sqrt(k), warmup 10/2^6 x k; the
#: README's own 16K row agrees; its 32K run used 14 warmup epochs).
NUS_TABLE = {512: (2**2, 10 / 2**6), 1024: (2**2.5, 10 / 2**5), 4096: (2**3.5, 10 / 2**3)}
NUS_TABLE[8192] = (2**4, 10 / 2**2)
DATE_ELSEWHERE = {2048: (2**3, 10 / 2**4), 16384: (2**4.5, 5.0), 32768: (2**5, 10.0)}


def small_batch(size: int = 4, image_size: int = 32) -> Batch:
    return EXPERIMENT.synthetic_batch({}, {"image_size": image_size}, size)


def test_the_model_is_torchvisions_resnet50_with_its_parameter_count():
    from torchvision.models import ResNet

    model = EXPERIMENT.build_model(EXPERIMENT.model_defaults)
    assert isinstance(model, ResNet)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # v1.5: the stride of a downsampling block is in its 3x3 convolution
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)


def test_zero_init_residual_zeroes_every_blocks_last_batch_norm_scale():
    zeroed = EXPERIMENT.build_model({**EXPERIMENT.model_defaults, "zero_init_residual": True})
    plain = EXPERIMENT.build_model(EXPERIMENT.model_defaults)

    def blocks(model: nn.Module) -> list[nn.Module]:
        return [block for layer in (1, 2, 3, 4) for block in getattr(model, f"layer{layer}")]

    assert len(blocks(zeroed)) == 16
    assert all(torch.count_nonzero(block.bn3.weight) == 0 for block in blocks(zeroed))
    assert all(torch.all(block.bn3.weight == 1) for block in blocks(plain))
    assert all(torch.all(block.bn2.weight == 1) for block in blocks(zeroed))


def test_model_inputs_are_normalized_in_the_models_memory_format():
    model = EXPERIMENT.build_model(EXPERIMENT.model_defaults)
    images = small_batch().tensors[0]
    inputs = model_inputs(model, images)
    assert inputs.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(inputs, imagenet.normalize(images))
    flat = EXPERIMENT.build_model({**EXPERIMENT.model_defaults, "channels_last": False})
    assert model_inputs(flat, images).is_contiguous()


def test_the_loss_is_summed_cross_entropy_with_label_smoothing():
    torch.manual_seed(0)
    model = EXPERIMENT.build_model(EXPERIMENT.model_defaults).eval()
    batch = small_batch(3)
    with torch.no_grad():
        loss_sum, count, _ = EXPERIMENT.loss(model, batch, None)
        log_p = F.log_softmax(model(model_inputs(model, batch.tensors[0])), dim=1)
    eps, labels = 0.1, batch.tensors[1]
    by_hand = -((1 - eps) * log_p[torch.arange(3), labels] + eps * log_p.mean(dim=1)).sum()
    assert count == 3
    torch.testing.assert_close(loss_sum, by_hand)


def test_lars_skips_weight_decay_and_the_trust_ratio_for_batch_norm_and_biases():
    """One step by hand: weights get lr * eta * |w| / (|g| + wd |w|) * (g + wd w); batch-norm
    parameters and the fc bias plain momentum SGD without weight decay (the NUS recipe's
    bn_bias_separately=True)."""
    torch.manual_seed(0)
    model = EXPERIMENT.build_model(EXPERIMENT.model_defaults)
    recipe = EXPERIMENT.base_recipe
    loss_sum, count, _ = EXPERIMENT.loss(model, small_batch(), None)
    (loss_sum / count).backward()
    optimizer = date.build_optimizer(model, recipe)
    groups = {group["name"]: group for group in optimizer.param_groups}
    no_decay = {id(p) for p in groups[date.optim.NO_WEIGHT_DECAY_GROUP]["params"]}
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(id(m.weight) in no_decay and id(m.bias) in no_decay for m in norms)
    assert id(model.fc.bias) in no_decay and id(model.fc.weight) not in no_decay
    assert groups[date.optim.WEIGHTS_GROUP]["weight_decay"] == recipe.weight_decay == 1e-4

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    optimizer.step()
    lr, wd, eta = recipe.lr, recipe.weight_decay, recipe.trust_coefficient
    for name in ("conv1.weight", "layer3.2.conv2.weight", "fc.weight"):
        w, g = before[name], grads[name]
        trust = eta * w.norm() / (g.norm() + wd * w.norm())
        expected = w - lr * trust * (g + wd * w)
        torch.testing.assert_close(dict(model.named_parameters())[name], expected)
    for name in ("bn1.weight", "layer1.0.bn3.bias", "fc.bias"):
        expected = before[name] - lr * grads[name]
        torch.testing.assert_close(dict(model.named_parameters())[name], expected)


def test_batch_norm_sees_each_micro_batch_alone():
    """Ghost batch norm: accumulating micro-batches of 2 normalizes each pair with its own
    statistics, so the running mean is that of two forward passes of 2, not one of 4."""
    torch.manual_seed(0)
    model = EXPERIMENT.build_model(EXPERIMENT.model_defaults).train()
    reference = copy.deepcopy(model)
    batch = small_batch(4)
    accumulate_gradients(EXPERIMENT, model, batch, 2, {}, resolve_device("cpu"))
    with torch.no_grad():
        for half in batch.split(2):
            reference(model_inputs(reference, half.tensors[0]))
    torch.testing.assert_close(model.bn1.running_mean, reference.bn1.running_mean)
    whole = copy.deepcopy(reference)
    with torch.no_grad():
        whole(model_inputs(whole, batch.tensors[0]))
    assert not torch.allclose(whole.bn1.running_var, reference.bn1.running_var)


def plan_table_rows(text: str) -> dict[int, list[str]]:
    """The --plan table's cells by batch (one method, one seed per batch)."""
    table = text.split("\n\n")[0].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = {}
    for line in table[2:]:
        cells = dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True))
        if cells["seed"] == "0":
            rows[int(cells["batch"])] = cells
    return rows


def test_plan_reproduces_the_nus_table_from_the_base_recipe_alone(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(imagenet, "DEFAULT_DIR", tmp_path / "absent")  # no ImageNet anywhere
    argv = ["imagenet_resnet50", "--preset", "full", "--plan", "--methods", "date"]
    argv += ["--estimate", "--set", "run.micro_batch_size=1", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rows = plan_table_rows(printed)
    assert sorted(rows) == list(definition.SWEEP_BATCH_SIZES)
    for batch, (lr, warmup) in {**NUS_TABLE, **DATE_ELSEWHERE}.items():
        assert rows[batch]["peak lr"] == f"{lr:.4g}", batch
        assert rows[batch]["warmup epochs"] == f"{warmup:.4g}", batch
        assert rows[batch]["warmup steps"] == "391"  # LEGW: the same number of steps
        assert rows[batch]["total steps"] == str(math.floor(90 * 1_281_167 / batch))
    spec = build_spec(build_parser().parse_args(argv), argv)
    for run in plan_runs(spec):
        lr, warmup = {**NUS_TABLE, **DATE_ELSEWHERE}[run.batch_size]
        assert math.isclose(run.recipe.lr, lr, rel_tol=1e-12)
        assert run.recipe.warmup_epochs == warmup
        assert run.recipe.optimizer == "lars" and run.recipe.poly_power == 2
    assert "Training examples per epoch: 1,281,167 (declared)" in printed
    assert "Estimated training time on this cpu" in printed and "(synthetic batch)" in printed
    assert "Whole sweep: 9 runs to train" in printed  # 3 seeds at the base batch, 1 elsewhere
    assert not (tmp_path / "out").exists()


def test_without_imagenet_the_default_command_exits_2_saying_what_to_do(
    capsys, monkeypatch, tmp_path
):
    default = tmp_path / "data" / "imagenet"
    monkeypatch.setattr(imagenet, "DEFAULT_DIR", default)
    out = tmp_path / "out"
    assert main(["imagenet_resnet50", "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert f"Looked in {default} (the default)" in message
    assert "DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG" in message
    assert "python -m reproduce.datasets.imagenet prepare --train-tar" in message
    assert "--data-dir DIR" in message and "`--preset smoke` runs end to end" in message
    assert "`--plan --preset full`" in message  # the NUS table up to 32K, without the data
    assert not out.exists()
    elsewhere = tmp_path / "mine"
    (elsewhere / "train").mkdir(parents=True)
    assert main(["imagenet_resnet50", "--data-dir", str(elsewhere), "--out", str(out)]) == 2
    assert f"{elsewhere / 'train'} has 0 class folders" in capsys.readouterr().err
    assert not out.exists()


def test_declared_sizes_and_the_synthetic_batch():
    config = dict(EXPERIMENT.data_defaults)
    assert EXPERIMENT.train_examples(config) == 1_281_167
    assert EXPERIMENT.train_examples({**config, "classes": 100}) == 128_117
    assert EXPERIMENT.train_examples({**config, "sample": True}) == 10
    images, labels = EXPERIMENT.synthetic_batch({}, config, 3).tensors
    assert images.shape == (3, 3, 224, 224) and images.dtype == torch.uint8
    assert labels.shape == (3,) and int(labels.max()) < 1000


def test_loader_settings_are_not_part_of_a_runs_identity():
    argv = ["imagenet_resnet50", "--preset", "smoke", "--methods", "date", "--batch-sizes", "4"]

    def key(*assignments: str) -> str:
        sets = [part for a in assignments for part in ("--set", a)]
        spec = build_spec(build_parser().parse_args([*argv, *sets]), [*argv, *sets])
        return run_key(spec, plan_runs(spec)[0])

    assert key() == key("data.workers=3", "data.loader_batch=2", "data.eval_batch_size=5")
    assert key() != key("data.image_size=96")


def test_presets_are_the_paper_setting_and_its_reductions():
    full = EXPERIMENT.presets["full"]
    assert full.batch_sizes == (512, 1024, 2048, 4096, 8192, 16384, 32768)
    assert full.methods == date.METHODS and EXPERIMENT.recipe_for("full").epochs == 90
    quick = EXPERIMENT.presets["quick"]
    assert quick.data["classes"] == 100 and not quick.data.get("sample", False)
    assert EXPERIMENT.presets["smoke"].data["sample"] is True
    sources = {target.source for target in EXPERIMENT.targets}
    assert any("LARS-ImageNet-PyTorch" in source for source in sources)
    assert any("SC'19" in source for source in sources) and any("MLPerf" in s for s in sources)
    with pytest.raises(ValueError):
        EXPERIMENT.recipe_for("full", {"warmup_epochs": 91})


def test_loader_speed_prints_both_rates_and_the_workers_needed(capsys, tmp_path):
    from reproduce.imagenet_resnet50 import loader_speed

    argv = ["--image-size", "64", "--micro-batch", "1", "--images", "10"]
    assert loader_speed.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "images/s per worker (one thread)" in lines[0] and "shipped images" in lines[0]
    assert "training step on" in lines[1] and "(cpu, fp32, micro-batch 1)" in lines[1]
    worker_rate = float(lines[0].split(": ")[1].split()[0])
    step_rate = float(lines[1].split(": ")[1].split()[0])
    assert worker_rate > 0 and step_rate > 0
    assert lines[2].startswith(
        f"workers needed to keep it fed: {math.ceil(step_rate / worker_rate)} "
    )
    assert loader_speed.main(["--data-dir", str(tmp_path)]) == 2
    assert f"{tmp_path / 'train'} is not a folder" in capsys.readouterr().err
