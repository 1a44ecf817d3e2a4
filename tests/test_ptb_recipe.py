"""The PTB recipes against their sources: TensorFlow ptb_word_lm.py's schedule and update, the
sweep settings, targets and claims, and ptb_large as a variant of ptb_small."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import date
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.experiment import Batch
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients
from reproduce.harness.sweep.planning import plan_runs
from reproduce.harness.sweep.spec import SweepSpec
from reproduce.ptb_small import experiment as small_module
from reproduce.ptb_small.data import BPTTStream

SMALL = get_experiment("ptb_small")
LARGE = get_experiment("ptb_large")

# (experiment, bptt, TF config: learning_rate, max_epoch, max_max_epoch, lr_decay, max_grad_norm)
CONFIGS = {
    "ptb_small": (SMALL, 20, (1.0, 4, 13, 0.5, 5.0)),
    "ptb_large": (LARGE, 35, (1.0, 14, 55, 1 / 1.15, 10.0)),
}


def tensorflow_lr(epoch: int, learning_rate: float, max_epoch: int, lr_decay: float) -> float:
    """ptb_word_lm.py main(): ``lr_decay = config.lr_decay ** max(i + 1 - config.max_epoch, 0.0)``
    for 0-based epoch i, then ``m.assign_lr(session, config.learning_rate * lr_decay)``."""
    return learning_rate * lr_decay ** max(epoch + 1 - max_epoch, 0)


@pytest.mark.parametrize("name", CONFIGS)
def test_the_schedule_is_tensorflows_in_every_epoch(name):
    experiment, bptt, (learning_rate, max_epoch, epochs, lr_decay, _) = CONFIGS[name]
    recipe = experiment.base_recipe
    assert recipe.epochs == epochs
    full_corpus = BPTTStream(torch.zeros(small_module.SPLIT_TOKENS["train"]), bptt)
    for steps_per_epoch in (full_corpus.steps_per_epoch(20), 37, 1000):
        warmup = date.warmup_steps(recipe, steps_per_epoch)
        for epoch in range(epochs):
            expected = tensorflow_lr(epoch, learning_rate, max_epoch, lr_decay) * bptt
            first, last = epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch - 1
            for step in (first, first + steps_per_epoch // 2, last):
                if step < warmup:
                    continue  # the chosen base warmup (not in the references)
                got = date.lr_at(recipe, step, steps_per_epoch)
                assert got == pytest.approx(expected, rel=1e-12), (epoch, step)


def test_the_full_corpus_epoch_lengths_match_tensorflows_epoch_size():
    # ptb_producer: epoch_size = (len(data) // batch_size - 1) // num_steps
    assert SMALL.presets["full"].batch_sizes[0] == 20
    train = torch.zeros(small_module.SPLIT_TOKENS["train"])
    assert BPTTStream(train, 20).steps_per_epoch(20) == 2323
    assert BPTTStream(train, 35).steps_per_epoch(20) == 1327
    assert BPTTStream(train, 20).steps_per_epoch(1280) == 36
    assert BPTTStream(train, 35).steps_per_epoch(1280) == 20


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("clip_active", [False, True])
def test_one_step_equals_tensorflows_update_on_the_time_summed_loss(name, clip_active):
    """TF minimizes sum over time of the batch-mean NLL with lr 1.0 and clip c; the harness
    minimizes the token mean with lr 1.0 * bptt and clip c / bptt: the same SGD step (exactly
    without clipping; with it, up to clip_grad_norm_'s 1e-6 added to the norm, which is relatively
    bptt times larger on the token-mean gradient's smaller norm)."""
    experiment, bptt, (learning_rate, _, _, _, max_grad_norm) = CONFIGS[name]
    recipe = experiment.base_recipe
    scale = 0.001 if clip_active else 1.0  # a tiny clip makes the clipping branch run
    torch.manual_seed(0)
    config = {**experiment.model_defaults, "vocab_size": 30, "hidden_size": 8, "dropout": 0.0}
    model = experiment.build_model(config).double()
    reference = copy.deepcopy(model)
    start = [parameter.detach().clone() for parameter in model.parameters()]
    tokens = torch.randint(0, 30, (4, bptt + 1))
    batch = Batch((tokens[:, :-1], tokens[:, 1:]))

    logits, _ = reference(batch.tensors[0])
    per_token = F.cross_entropy(logits.flatten(0, 1), batch.tensors[1].flatten(), reduction="none")
    time_summed = per_token.view(4, bptt).mean(dim=0).sum()  # sequence_loss, then reduce_sum
    time_summed.backward()
    norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), max_grad_norm * scale)
    assert (norm > max_grad_norm * scale) == clip_active
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter -= learning_rate * parameter.grad

    accumulate_gradients(experiment, model, batch, 4, {}, resolve_device("cpu"))
    torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm * scale)
    optimizer = date.build_optimizer(model, recipe)
    optimizer.step()
    rtol = 1e-4 if clip_active else 1e-10
    for mine, theirs, before in zip(model.parameters(), reference.parameters(), start, strict=True):
        torch.testing.assert_close(mine - before, theirs - before, rtol=rtol, atol=1e-15)


@pytest.mark.parametrize("name", CONFIGS)
def test_the_full_sweep_plans_every_method_and_dates_warmup_ends_before_the_decay(name):
    experiment = CONFIGS[name][0]
    full = experiment.presets["full"]
    assert full.batch_sizes == tuple(20 * 2**i for i in range(7))
    assert set(full.methods) == set(date.METHODS)
    assert full.base_seeds == 3
    spec = SweepSpec(experiment, "full", full.methods, full.batch_sizes, seeds=1)
    assert len(plan_runs(spec)) == 3 * 6 + 6 * 6  # 3 seeds at the base batch, 1 elsewhere
    at_x64 = date.scale(experiment.base_recipe, 1280, "date")
    assert at_x64.warmup_epochs == pytest.approx(2.0)
    assert at_x64.warmup_epochs < experiment.base_recipe.decay_start_epoch
    for batch_size in full.batch_sizes:
        candidates = [m for m in experiment.micro_batch_candidates if m <= batch_size]
        assert candidates and all(batch_size % micro == 0 for micro in candidates)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_preset_plans(name):
    experiment = CONFIGS[name][0]
    for preset_name, preset in experiment.presets.items():
        spec = SweepSpec(experiment, preset_name, preset.methods, preset.batch_sizes, seeds=1)
        assert plan_runs(spec)


@pytest.mark.parametrize(
    ("name", "values"), [("ptb_small", (114.5, 115.91)), ("ptb_large", (78.4, 78.29))]
)
def test_targets_are_external_references_and_the_claim_is_the_abstracts(name, values):
    experiment = CONFIGS[name][0]
    assert experiment.primary_metric == "perplexity" and experiment.mode == "min"
    assert tuple(target.value for target in experiment.targets) == values
    for target in experiment.targets:
        assert target.status == "external reference"
        assert target.metric == "perplexity" and target.mode == "min"
        assert target.tolerance > 0 and "tolerance" in target.note
    ttt = experiment.time_to_target
    assert ttt.status == "suite baseline" and "suite-chosen" in ttt.source and ttt.mode == "min"
    (claim,) = experiment.claims
    assert (claim.scale_factor, claim.method, claim.metric, claim.mode) == (
        64,
        "date",
        "perplexity",
        "min",
    )


def test_large_is_small_with_the_large_sizes_and_recipe():
    for hook in ("build_data", "build_model", "loss", "evaluate"):
        assert getattr(LARGE, hook) is getattr(SMALL, hook)
    assert LARGE.model_defaults == {
        **SMALL.model_defaults,
        "hidden_size": 1500,
        "dropout": 0.65,
        "init_scale": 0.04,
    }
    assert LARGE.data_defaults == {**SMALL.data_defaults, "bptt": 35}
    assert SMALL.data_defaults["bptt"] == 20
    assert SMALL.model_defaults == {
        "vocab_size": 10_000,
        "hidden_size": 200,
        "num_layers": 2,
        "dropout": 0.0,
        "init_scale": 0.1,
    }
    changed = {
        field
        for field, value in LARGE.base_recipe.to_dict().items()
        if SMALL.base_recipe.to_dict()[field] != value
    }
    assert changed == {"lr", "epochs", "decay_rate", "decay_start_epoch", "grad_clip_norm"}
    assert SMALL.base_recipe.optimizer == "sgd" and SMALL.base_recipe.momentum == 0
    assert SMALL.base_recipe.batch_size == LARGE.base_recipe.batch_size == 20
