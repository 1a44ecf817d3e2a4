"""The PTB language model, its loss hook and its evaluation: sizes, perplexity and carried state."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
from torch import nn

from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.experiment import Batch
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients, count_parameters
from reproduce.ptb_small.data import BPTTStream, TokenSplit
from reproduce.ptb_small.experiment import EVAL_WINDOW, evaluate, loss, split_nll

CPU = torch.device("cpu")
SMALL = get_experiment("ptb_small")
LARGE = get_experiment("ptb_large")


def expected_parameters(vocab: int, hidden: int, layers: int) -> int:
    """Counted by hand: embedding V*H; per LSTM layer 4H*(input + H) weights and two 4H bias
    vectors (torch keeps b_ih and b_hh); softmax H*V weights and V biases."""
    embedding = vocab * hidden
    lstm = layers * (4 * hidden * (hidden + hidden) + 2 * 4 * hidden)
    softmax = hidden * vocab + vocab
    return embedding + lstm + softmax


def test_small_model_has_the_expected_parameter_count():
    model = SMALL.build_model(SMALL.model_defaults)
    assert expected_parameters(10_000, 200, 2) == 4_653_200
    assert count_parameters(model) == 4_653_200


def test_large_model_has_the_expected_parameter_count():
    with torch.device("meta"):  # 66M parameters: count them without allocating
        model = LARGE.build_model(LARGE.model_defaults)
    assert expected_parameters(10_000, 1500, 2) == 66_034_000  # "66M" in Zaremba et al. 2014
    assert count_parameters(model) == 66_034_000


def test_every_parameter_starts_uniform_in_the_init_scale():
    model = SMALL.build_model({**SMALL.model_defaults, "hidden_size": 32, "init_scale": 0.04})
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= 0.04, name
        assert parameter.abs().max() > 0.03, name  # not left at torch's default init


def test_large_model_drops_out_non_recurrent_connections_in_training_only():
    config = {**LARGE.model_defaults, "hidden_size": 16, "vocab_size": 50}
    model = LARGE.build_model(config)
    assert model.lstm.dropout == pytest.approx(0.65)
    inputs = torch.randint(0, 50, (3, 5))
    model.train()
    assert not torch.equal(model(inputs)[0], model(inputs)[0])
    model.eval()
    assert torch.equal(model(inputs)[0], model(inputs)[0])


class ZeroLogits(nn.Module):
    """A uniform predictor over the vocabulary."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, inputs, state=None):
        return torch.zeros(*inputs.shape, self.vocab_size), state


def test_a_uniform_predictor_scores_the_vocabulary_size():
    tokens = torch.randint(0, 10_000, (2_345,), generator=torch.Generator().manual_seed(0))
    metrics = evaluate(ZeroLogits(10_000), TokenSplit(tokens, rows=10), CPU, batch_size=1024)
    # float32 logits: log(10000) is exact to about 1e-7 relative.
    assert metrics["perplexity"] == pytest.approx(10_000, rel=1e-6)
    assert metrics["loss"] == pytest.approx(math.log(10_000), rel=1e-7)


def tiny_model(seed: int = 0, vocab: int = 50, hidden: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    config = {**SMALL.model_defaults, "vocab_size": vocab, "hidden_size": hidden}
    # Zaremba's init keeps a random model's state small; a wider init makes the state visible.
    return SMALL.build_model({**config, "init_scale": 0.5}).double().eval()


def test_the_loss_hook_carries_the_state_like_one_long_forward():
    """Truncated BPTT: window 2 from window 1's state scores exactly as the second half of one
    forward over both windows; starting window 2 from zeros scores differently."""
    model = tiny_model()
    tokens = torch.randint(0, 50, (3, 13), generator=torch.Generator().manual_seed(1))
    first = Batch((tokens[:, :6], tokens[:, 1:7]))
    second = Batch((tokens[:, 6:12], tokens[:, 7:13]))
    with torch.no_grad():
        logits, _ = model(tokens[:, :12])
        reference = nn.functional.cross_entropy(
            logits[:, 6:].flatten(0, 1), tokens[:, 7:13].flatten(), reduction="sum"
        )
        _, count, state = loss(model, first, None)
        carried, count, _ = loss(model, second, state)
        reset, _, _ = loss(model, second, None)
    assert count == 3 * 6
    torch.testing.assert_close(carried, reference, rtol=1e-12, atol=1e-12)
    assert abs(float(reset) - float(reference)) > 1e-3


def test_the_loss_hook_stops_gradients_at_the_window_start():
    model = tiny_model().train()
    tokens = torch.randint(0, 50, (2, 9))
    _, _, state = loss(model, Batch((tokens[:, :4], tokens[:, 1:5])), None)
    assert all(not tensor.requires_grad for tensor in state)
    value, _, _ = loss(model, Batch((tokens[:, 4:8], tokens[:, 5:9])), state)
    value.backward()  # would fail ("backward through the graph a second time") if not detached


def test_the_loss_hook_refuses_a_state_for_other_rows():
    model = tiny_model()
    tokens = torch.randint(0, 50, (4, 5))
    _, _, state = loss(model, Batch((tokens[:, :4], tokens[:, 1:])), None)
    with pytest.raises(ValueError, match="rows"):
        loss(model, Batch((tokens[:2, :4], tokens[:2, 1:])), state)


def test_evaluation_carries_the_state_through_each_row():
    """The split's NLL does not depend on the forward window (the state is carried), and differs
    from resetting the state every window."""
    model = tiny_model()
    tokens = torch.randint(0, 50, (503,), generator=torch.Generator().manual_seed(2))
    split = TokenSplit(tokens, rows=5)
    whole_rows = split_nll(model, split, CPU, window=10_000)  # one forward per row
    for window in (1, 7, EVAL_WINDOW):
        assert split_nll(model, split, CPU, window) == pytest.approx(whole_rows, rel=1e-12)
    metrics = evaluate(model, split, CPU, batch_size=1024)
    assert metrics["loss"] == pytest.approx(whole_rows / split.scored_tokens, rel=1e-12)

    rows = tokens[: 5 * 100].view(5, 100)
    reset_every_window = 0.0  # the same 5 x 99 targets, read in 7-token windows from zeros
    with torch.no_grad():
        for start in range(0, 99, 7):
            stop = min(start + 7, 99)
            window = Batch((rows[:, start:stop], rows[:, start + 1 : stop + 1]))
            reset_every_window += float(loss(model, window, None)[0])
    assert abs(reset_every_window - whole_rows) > 1e-3


def test_the_trainer_feeds_each_micro_batch_its_own_state_forward():
    seen: list[tuple[int, object]] = []

    def spy(model, batch, state):
        seen.append((batch.size, state))
        return loss(model, batch, state)

    experiment = dataclasses.replace(SMALL, loss=spy)
    model = tiny_model().float().train()
    data = BPTTStream(torch.randint(0, 50, (8 * 31,)), bptt=5)  # 6 windows an epoch
    states: dict[int, object] = {}
    returned = []
    for batch in itertools.islice(data.stream(8, seed=0), 8):
        seen.clear()
        accumulate_gradients(experiment, model, batch, 3, states, resolve_device("cpu"))
        incoming = [state for _, state in seen]
        assert [size for size, _ in seen] == [3, 3, 2]
        if batch.reset_state:
            assert incoming == [None, None, None]
        else:
            for state, previous in zip(incoming, returned, strict=True):
                assert state is previous  # the very state the same rows returned last window
        returned = [states[index] for index in range(3)]
        assert [state[0].shape[1] for state in returned] == [3, 3, 2]


def test_a_trained_model_uses_the_carried_state():
    """A cyclic sequence where the next token depends on the previous two: the first token of a
    window is only predictable from the state carried out of the window before."""
    cycle = torch.tensor([0, 1, 0, 2, 1, 2])  # each token has two successors, each pair one
    data = BPTTStream(cycle.repeat(200), bptt=4)
    experiment = SMALL
    torch.manual_seed(0)
    model = experiment.build_model(
        {**SMALL.model_defaults, "vocab_size": 3, "hidden_size": 16}
    ).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    states: dict[int, object] = {}
    for batch in itertools.islice(data.stream(4, seed=0), 150):
        optimizer.zero_grad()
        accumulate_gradients(experiment, model, batch, 2, states, resolve_device("cpu"))
        optimizer.step()

    model.eval()
    carried = reset = 0.0
    state = None
    with torch.no_grad():
        for index, batch in enumerate(itertools.islice(data.stream(4, seed=0), 11)):
            if index:  # score each window's first token, from the carried state and from zeros
                first = Batch((batch.tensors[0][:, :1], batch.tensors[1][:, :1]))
                reset += float(loss(model, first, None)[0])
                carried += float(loss(model, first, state)[0])
            state = loss(model, batch, state)[2]
    # Without the state the best possible is log 2 a token (two equally likely successors).
    assert reset > 0.5 * 40 * math.log(2)
    assert carried < 0.2 * reset
