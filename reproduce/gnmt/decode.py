"""Batched greedy and beam-search decoding, and BLEU with sacreBLEU.

Beam search follows the reference's ``SequenceGenerator`` (NVIDIA DeepLearningExamples GNMT,
seq2seq/inference/beam_search.py; README "inference": beam 5, length normalization factor 0.6
and constant 5.0, coverage penalty factor 0.1), which scores with Wu et al. 2016 (GNMT paper,
Section 7):

    s(Y, X) = log P(Y | X) / lp(Y) + cp(X; Y),
    lp(Y) = ((c + |Y|) / (c + 1)) ** alpha,           c = 5, alpha = 0.6
    cp(X; Y) = beta * sum_i log(min(sum_j p_ij, 1)),   beta = 0.1

where p_ij is the attention weight of target step j on source token i. During the search the
hypotheses are ranked by log P alone and the score above decides among the final beam, as in the
reference. |Y| counts the generated tokens with EOS, plus one for BOS (the reference's ``lengths``
start at 1); source positions that got no attention at all add nothing to cp (the reference maps
log 0 to 0). One thing differs on purpose: the reference keeps the accumulated attention in beam
slots and does not reorder it when hypotheses move between slots; here it moves with its
hypothesis, as the formula says. A finished hypothesis (ended by EOS) stays in the beam with its
score, extended only by padding; a sentence is done when all its hypotheses are finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .model import GNMT
from .subword import BOS, EOS, PAD

#: Reference defaults (train.py "test setup" / translate.py): beam 5, lp alpha 0.6 and constant
#: 5.0, cp beta 0.1, and at most 150 target tokens (train.py ``--test-max-length 150``).
BEAM_SIZE = 5
LENGTH_NORM_FACTOR = 0.6
LENGTH_NORM_CONSTANT = 5.0
COVERAGE_PENALTY = 0.1
MAX_DECODE_LENGTH = 150


@dataclass(frozen=True)
class DecodeSettings:
    beam_size: int = BEAM_SIZE
    length_norm_factor: float = LENGTH_NORM_FACTOR
    length_norm_constant: float = LENGTH_NORM_CONSTANT
    coverage_penalty: float = COVERAGE_PENALTY
    max_length: int = MAX_DECODE_LENGTH


def _strip(tokens: Sequence[int]) -> list[int]:
    """Tokens up to (without) the first EOS, padding dropped."""
    out = []
    for token in tokens:
        if token == EOS:
            break
        if token != PAD:
            out.append(int(token))
    return out


@torch.no_grad()
def greedy_decode(
    model: GNMT, source: torch.Tensor, source_lengths: torch.Tensor, max_length: int
) -> list[list[int]]:
    """The most likely next token at every step, for a batch of sources; EOS ends a sentence."""
    encoded = model.encode(source, source_lengths)
    batch = source.shape[0]
    last = torch.full((batch, 1), BOS, dtype=torch.long, device=source.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=source.device)
    state = None
    outputs = []
    for _ in range(max_length):
        logits, _, state = model.decode(last, encoded, state)
        token = logits[:, -1].argmax(dim=-1)
        token = token.masked_fill(finished, PAD)
        outputs.append(token)
        finished = finished | (token == EOS)
        last = token.unsqueeze(1)
        if bool(finished.all()):
            break
    tokens = torch.stack(outputs, dim=1).tolist()
    return [_strip(row) for row in tokens]


def length_penalty(lengths: torch.Tensor, factor: float, constant: float) -> torch.Tensor:
    """lp = ((constant + |Y|) / (constant + 1)) ** factor (Wu et al. 2016, eq. 14)."""
    return ((constant + lengths.float()) / (constant + 1.0)) ** factor


def coverage_penalty(coverage: torch.Tensor, mask: torch.Tensor, factor: float) -> torch.Tensor:
    """cp = factor * sum over real source positions of log(min(attention received, 1)); a
    position that received exactly 0 adds 0 (the reference's log 0 -> 0)."""
    capped = coverage.clamp(max=1.0)
    logs = torch.where(capped > 0, capped.clamp_min(torch.finfo(capped.dtype).tiny).log(), 0.0)
    return factor * (logs * mask).sum(dim=-1)


@torch.no_grad()
def beam_search(
    model: GNMT,
    source: torch.Tensor,
    source_lengths: torch.Tensor,
    settings: DecodeSettings = DecodeSettings(),
) -> tuple[list[list[int]], torch.Tensor]:
    """The best hypothesis of a width-``beam_size`` search for each source, and its score."""
    beam = settings.beam_size
    batch = source.shape[0]
    rows = batch * beam
    device = source.device
    encoded = model.encode(source, source_lengths)
    encoded = encoded.select(torch.arange(batch, device=device).repeat_interleave(beam))
    source_width = encoded.keys.shape[1]
    vocab = model.vocab_size

    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = float("-inf")  # at the first step only one hypothesis exists
    finished = torch.zeros(batch, beam, dtype=torch.bool, device=device)
    lengths = torch.ones(batch, beam, dtype=torch.long, device=device)  # BOS counts, as in ref.
    coverage = torch.zeros(batch, beam, source_width, device=device)
    tokens = torch.zeros(batch, beam, 0, dtype=torch.long, device=device)
    last = torch.full((rows, 1), BOS, dtype=torch.long, device=device)
    # a finished hypothesis may only be extended by PAD, at no cost
    pad_only = torch.full((vocab,), float("-inf"), device=device)
    pad_only[PAD] = 0.0
    offsets = (torch.arange(batch, device=device) * beam).unsqueeze(1)
    state = None
    for _ in range(settings.max_length):
        logits, attention, state = model.decode(last, encoded, state)
        log_probs = torch.log_softmax(logits[:, -1].float(), dim=-1).view(batch, beam, vocab)
        log_probs = torch.where(finished.unsqueeze(2), pad_only, log_probs)
        attention = attention[:, -1].float().view(batch, beam, source_width)
        coverage = coverage + attention.masked_fill(finished.unsqueeze(2), 0.0)
        candidates = (scores.unsqueeze(2) + log_probs).view(batch, beam * vocab)
        scores, flat = candidates.topk(beam, dim=1)
        origin = torch.div(flat, vocab, rounding_mode="floor")
        token = flat % vocab
        tokens = torch.cat(
            (tokens.gather(1, origin.unsqueeze(2).expand_as(tokens)), token.unsqueeze(2)), 2
        )
        was_finished = finished.gather(1, origin)
        lengths = lengths.gather(1, origin) + (~was_finished).long()
        coverage = coverage.gather(1, origin.unsqueeze(2).expand_as(coverage))
        finished = was_finished | (token == EOS)
        state = state.select((origin + offsets).view(-1))
        last = token.view(rows, 1)
        if bool(finished.all()):
            break
    mask = encoded.mask.view(batch, beam, source_width).float()
    final = scores / length_penalty(
        lengths, settings.length_norm_factor, settings.length_norm_constant
    ) + coverage_penalty(coverage, mask, settings.coverage_penalty)
    best = final.argmax(dim=1)
    chosen = tokens[torch.arange(batch, device=device), best].tolist()
    return [_strip(row) for row in chosen], final.gather(1, best.unsqueeze(1)).squeeze(1)


def corpus_bleu(
    hypotheses: Sequence[str], references: Sequence[str], *, uncased: bool = False
) -> tuple[float, str]:
    """(BLEU, sacreBLEU signature) of detokenized hypotheses against raw references.

    Cased with sacreBLEU's default 13a tokenizer: the metric of the reference's README
    ("de-tokenized BLEU computed by SacreBLEU"). ``uncased``: lowercased with the ``intl``
    tokenizer, the MLPerf GNMT quality metric (mlcommons/training rnn_translator/README.md:
    sacrebleu ``--score-only -lc --tokenize intl``, target 24.00).
    """
    from sacrebleu.metrics import BLEU

    metric = BLEU(lowercase=True, tokenize="intl") if uncased else BLEU()
    score = metric.corpus_score(list(hypotheses), [list(references)]).score
    return float(score), str(metric.get_signature())


def bleu_signature(*, uncased: bool = False) -> str:
    """The signature ``corpus_bleu`` stores with its scores (one reference per sentence)."""
    return corpus_bleu(["a"], ["a"], uncased=uncased)[1]
