"""The shared trainer: gradient accumulation, the data stream and evaluation timing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.experiment import Batch, ShuffledExamples
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients, evaluation_steps


def test_accumulated_micro_batches_give_the_big_batch_update():
    experiment = get_experiment("mnist_lstm")
    torch.manual_seed(0)
    model = experiment.build_model({"hidden_size": 32}).double()
    images = torch.randn(96, 28, 28, dtype=torch.float64)
    labels = torch.randint(0, 10, (96,))
    batch = Batch((images, labels))
    device = resolve_device("cpu")

    reference = copy.deepcopy(model)
    loss_sum, count, _ = experiment.loss(reference, batch, None)
    (loss_sum / count).backward()

    loss, items = accumulate_gradients(experiment, model, batch, 20, {}, device)  # 5 uneven parts
    assert items == 96
    assert loss == pytest.approx(float(loss_sum.detach() / count), rel=1e-12)
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-10, atol=1e-12)


def test_accumulation_in_float32_matches_within_float_tolerance():
    experiment = get_experiment("mnist_lstm")
    torch.manual_seed(1)
    model = experiment.build_model({"hidden_size": 64})
    batch = Batch((torch.randn(256, 28, 28), torch.randint(0, 10, (256,))))
    reference = copy.deepcopy(model)
    loss_sum, count, _ = experiment.loss(reference, batch, None)
    (loss_sum / count).backward()
    accumulate_gradients(experiment, model, batch, 64, {}, resolve_device("cpu"))
    for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-6)


def test_stream_covers_every_example_once_per_epoch_and_reshuffles():
    data = ShuffledExamples(torch.arange(10))
    stream = data.stream(batch_size=4, seed=3)
    seen = torch.cat([next(stream).tensors[0] for _ in range(5)])  # 20 examples = 2 epochs
    first, second = seen[:10], seen[10:]
    assert sorted(first.tolist()) == list(range(10))
    assert sorted(second.tolist()) == list(range(10))
    assert first.tolist() != second.tolist()
    assert data.steps_per_epoch(4) == 2.5


def test_stream_resumes_at_any_step_with_the_same_batches():
    data = ShuffledExamples(torch.arange(37))
    full = [next(it).tensors[0] for it in [data.stream(8, seed=5)] for _ in range(12)]
    resumed = data.stream(8, seed=5, start_step=7)
    for step in range(7, 12):
        assert torch.equal(next(resumed).tensors[0], full[step])


def test_stream_shards_split_each_global_batch():
    data = ShuffledExamples(torch.arange(50))
    whole = data.stream(10, seed=0)
    rank0 = data.stream(10, seed=0, shard=(0, 2))
    rank1 = data.stream(10, seed=0, shard=(1, 2))
    for _ in range(7):
        joined = torch.cat([next(rank0).tensors[0], next(rank1).tensors[0]])
        assert torch.equal(joined, next(whole).tensors[0])


def test_stream_rejects_mismatched_tensors_and_uneven_shards():
    with pytest.raises(ValueError, match="disagree"):
        ShuffledExamples(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="world_size"):
        next(ShuffledExamples(torch.zeros(8)).stream(5, seed=0, shard=(0, 2)))


@pytest.mark.parametrize(
    ("steps_per_epoch", "per_epoch", "last", "expected"),
    [
        (10.0, 1.0, 30, [10, 20, 30]),
        (7.32, 1.0, 21, [7, 15, 21]),  # fractional epochs: rounded, and the last step always
        (4.0, 2.0, 8, [2, 4, 6, 8]),
        (0.5, 1.0, 3, [1, 2, 3]),  # an epoch shorter than a step: every step, once
    ],
)
def test_evaluation_steps(steps_per_epoch, per_epoch, last, expected):
    assert evaluation_steps(steps_per_epoch, per_epoch, last) == expected


def test_batch_split_keeps_order_and_reset_flag():
    batch = Batch((torch.arange(10), torch.arange(10) * 2), reset_state=True)
    parts = batch.split(4)
    assert [p.size for p in parts] == [4, 4, 2]
    assert all(p.reset_state for p in parts)
    assert torch.equal(torch.cat([p.tensors[1] for p in parts]), batch.tensors[1])


def test_model_is_an_lstm_over_rows():
    model = get_experiment("mnist_lstm").build_model({"hidden_size": 128})
    assert isinstance(model.lstm, nn.LSTM)
    # LSTM 4*128*(28+128) + 2*4*128 biases, head 128*10 + 10
    assert sum(p.numel() for p in model.parameters()) == 4 * 128 * (28 + 128) + 8 * 128 + 1290
