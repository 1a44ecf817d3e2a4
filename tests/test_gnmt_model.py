"""GNMT v2: parameter count of the full configuration, the decoder's step-by-step path, padding
invariance, and beam search (scoring by hand on a stub model, batched = unbatched, beam 1 =
greedy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from reproduce.gnmt.decode import (
    DecodeSettings,
    beam_search,
    coverage_penalty,
    greedy_decode,
    length_penalty,
)
from reproduce.gnmt.experiment import MODEL_DEFAULTS, build_model
from reproduce.gnmt.model import GNMT, EncodedSource, init_range_for, parameter_count
from reproduce.gnmt.subword import BOS, EOS, PAD

#: The full configuration (README "Default configuration": 4 layers of 1024, shared embedding;
#: the suite's 32,000-piece vocabulary), counted by hand from the reference's layer shapes
#: (seq2seq/models/{encoder,decoder,attention}.py), H = 1024, V = 32,000:
#:   embedding V H                                    =  32,768,000
#:   encoder: bi-LSTM(H) 2(8H^2 + 8H) = 16,793,600; LSTM(2H->H) 12H^2 + 8H = 12,591,104;
#:            2 x LSTM(H) 2(8H^2 + 8H) = 16,793,600   =  46,178,304
#:   decoder: LSTM(H) 8,396,800; 3 x LSTM(2H->H) 37,773,312; attention 2H^2 + 2H + 1 = 2,099,201
#:                                                    =  48,269,313
#:   classifier H V + V                               =  32,800,000
FULL_PARAMETERS = 160_015_617


def test_full_model_has_the_parameter_count_derived_from_the_reference():
    assert parameter_count(32_000, 1024, 4) == FULL_PARAMETERS
    model = build_model(MODEL_DEFAULTS)
    assert sum(p.numel() for p in model.parameters()) == FULL_PARAMETERS


@pytest.mark.parametrize(("vocab", "hidden", "layers"), [(50, 8, 2), (37, 12, 3), (64, 16, 5)])
def test_parameter_formula_matches_small_models(vocab, hidden, layers):
    model = GNMT(vocab, hidden, layers)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(vocab, hidden, layers)


@pytest.mark.parametrize(
    ("hidden", "width_scaled", "init_range"), [(16, True, 0.8), (16, False, 0.1), (1024, True, 0.1)]
)
def test_initialization_follows_the_reference(hidden, width_scaled, init_range):
    """uniform(-r, r) with the reference's r = 0.1 at width 1024, scaled by sqrt(1024 / width)."""
    model = GNMT(
        40, hidden, 2 if hidden > 16 else 4, init_range=init_range_for(hidden, width_scaled)
    )
    assert init_range_for(hidden, width_scaled) == pytest.approx(init_range)
    for name, parameter in model.named_parameters():
        if "bias_hh" in name:
            assert torch.count_nonzero(parameter) == 0, name
        elif name == "attention.score_gain":
            assert parameter.item() == pytest.approx(1 / math.sqrt(hidden))
        elif name == "attention.score_bias":
            assert torch.count_nonzero(parameter) == 0
        else:
            assert parameter.abs().max() <= init_range, name
            if parameter.numel() >= 200:  # the whole range is used (else p < 1e-9)
                assert parameter.abs().max() > 0.9 * init_range, name


def _batch(generator: torch.Generator, vocab: int = 30):
    lengths = torch.tensor([7, 4, 2])
    source = torch.randint(4, vocab, (3, 7), generator=generator)
    source[torch.arange(7) >= lengths.unsqueeze(1)] = PAD
    target = torch.randint(4, vocab, (3, 6), generator=generator)
    return source, lengths, target


def test_step_by_step_decoding_equals_teacher_forcing_and_padding_changes_nothing():
    torch.manual_seed(0)
    model = GNMT(30, 16, 4, dropout=0.0).eval()
    source, lengths, target = _batch(torch.Generator().manual_seed(1))
    with torch.no_grad():
        forced = model(source, lengths, target)
        encoded = model.encode(source, lengths)
        state, steps = None, []
        for position in range(target.shape[1]):
            logits, _, state = model.decode(target[:, position : position + 1], encoded, state)
            steps.append(logits)
        torch.testing.assert_close(torch.cat(steps, dim=1), forced)
        for row in range(3):
            alone = model(
                source[row : row + 1, : lengths[row]], lengths[row : row + 1], target[row : row + 1]
            )
            torch.testing.assert_close(alone, forced[row : row + 1])


def test_length_and_coverage_penalties_by_hand():
    lengths = torch.tensor([1, 2, 10])
    expected = [((5 + n) / 6) ** 0.6 for n in (1, 2, 10)]
    assert length_penalty(lengths, 0.6, 5.0).tolist() == pytest.approx(expected)
    coverage = torch.tensor([[0.5, 2.0, 0.0, 0.25]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last position is padding
    # log(0.5) + log(min(2, 1)) + (0 -> 0); the padded position is ignored
    assert coverage_penalty(coverage, mask, 0.1).item() == pytest.approx(0.1 * math.log(0.5))


# A stub decoder whose next-token distribution depends on how many A's it has emitted, so that the
# hypotheses [EOS] and [A, A, EOS] can be scored by hand.
A, B = 4, 5
STUB_VOCAB = 6


@dataclass
class StubState:
    count: torch.Tensor  # A's emitted so far, per row

    def select(self, index: torch.Tensor) -> StubState:
        return StubState(self.count[index])


class StubModel(torch.nn.Module):
    """P(EOS | BOS) = e^-1, P(A | BOS) = 0.6; after one A: A 0.6, EOS 0.4; after two A's:
    EOS e^-0.078, A the rest. Attention is uniform over the 2 source positions."""

    vocab_size = STUB_VOCAB

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> EncodedSource:
        keys = torch.zeros(source.shape[0], source.shape[1], 1)
        mask = torch.arange(source.shape[1]) < lengths.unsqueeze(1)
        return EncodedSource(keys, keys, mask, lengths)

    def decode(self, inputs, encoded, state):
        rows = inputs.shape[0]
        count = state.count if state is not None else torch.zeros(rows, dtype=torch.long)
        count = count + (inputs[:, -1] == A).long()
        probabilities = torch.full((rows, STUB_VOCAB), 1e-12)
        first = torch.tensor([0, 0, 0, math.exp(-1), 0.6, 1 - 0.6 - math.exp(-1)])
        second = torch.tensor([0, 0, 0, 0.4, 0.6, 0.0])
        third = torch.tensor([0, 0, 0, math.exp(-0.078), 1 - math.exp(-0.078), 0.0])
        table = torch.stack((first, second, third))
        probabilities = probabilities + table[count.clamp(max=2)]
        attention = torch.full((rows, 1, encoded.keys.shape[1]), 0.5)
        return probabilities.log().unsqueeze(1), attention, StubState(count)


def _stub_search(alpha: float, beta: float) -> list[int]:
    source = torch.tensor([[A, B]])
    settings = DecodeSettings(
        beam_size=2, length_norm_factor=alpha, coverage_penalty=beta, max_length=5
    )
    hypotheses, _ = beam_search(StubModel(), source, torch.tensor([2]), settings)
    return hypotheses[0]


def test_beam_scores_by_hand_length_normalization_and_coverage_decide():
    """Raw log-probabilities: [EOS] -1.0 beats [A, A, EOS] -1.1. Length normalization (|Y| counts
    BOS and EOS: 2 and 4) gives -1.0 / (7/6)^0.6 = -0.912 < -1.1 / (9/6)^0.6 = -0.862. The
    coverage penalty alone: [EOS] attended each source token 0.5 (0.1 x 2 log 0.5 = -0.139),
    [A, A, EOS] 1.5 (capped at 1, penalty 0): -1.139 < -1.1."""
    assert _stub_search(alpha=0.0, beta=0.0) == []  # [EOS]: nothing before EOS
    assert _stub_search(alpha=0.6, beta=0.0) == [A, A]
    assert _stub_search(alpha=0.0, beta=0.1) == [A, A]
    greedy = greedy_decode(StubModel(), torch.tensor([[A, B]]), torch.tensor([2]), 5)
    assert greedy == [[A, A]]


def test_batched_beam_search_equals_one_sentence_at_a_time():
    torch.manual_seed(3)
    model = GNMT(40, 24, 3, dropout=0.0).eval()
    source, lengths, _ = _batch(torch.Generator().manual_seed(4), vocab=40)
    settings = DecodeSettings(max_length=12)
    together, scores = beam_search(model, source, lengths, settings)
    for row in range(3):
        alone, score = beam_search(
            model, source[row : row + 1, : lengths[row]], lengths[row : row + 1], settings
        )
        assert alone[0] == together[row]
        assert score.item() == pytest.approx(scores[row].item(), abs=1e-5)
    assert all(EOS not in hypothesis and BOS not in hypothesis for hypothesis in together)


def test_beam_of_one_is_greedy():
    torch.manual_seed(5)
    model = GNMT(40, 24, 3, dropout=0.0).eval()
    source, lengths, _ = _batch(torch.Generator().manual_seed(6), vocab=40)
    settings = DecodeSettings(
        beam_size=1, length_norm_factor=0.0, coverage_penalty=0.0, max_length=10
    )
    beam, _ = beam_search(model, source, lengths, settings)
    assert beam == greedy_decode(model, source, lengths, 10)
