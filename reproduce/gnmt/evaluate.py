"""Evaluation of a GNMT model on a split: token NLL and perplexity, and BLEU where asked."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.harness.run.metrics import perplexity

from .data import EncodedPairs
from .decode import DecodeSettings, beam_search, corpus_bleu, greedy_decode
from .subword import PAD, SubwordModel


@dataclass(frozen=True)
class TranslationSplit:
    """A validation or test split.

    ``pairs`` are scored by teacher-forced token NLL (every pair, nothing filtered out); with
    ``bleu``, every source of ``decode_sources`` is translated (beam search with ``settings``, and
    greedily too with ``greedy``) and scored against ``references`` (raw text) by sacreBLEU.
    """

    pairs: EncodedPairs
    references: list[str]
    subword: SubwordModel
    bleu: bool = False
    greedy: bool = False
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    batch_size: int = 64  # NLL batches (the reference's --val-batch-size 64)
    decode_batch_size: int = 128  # the reference's --test-batch-size 128

    def __post_init__(self) -> None:
        if self.bleu and len(self.references) != len(self.pairs):
            raise ValueError(
                f"{len(self.references)} references for {len(self.pairs)} sources: BLEU needs one "
                "reference per source"
            )


def _model(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@torch.no_grad()
def token_nll(
    model: nn.Module, pairs: EncodedPairs, device: torch.device, batch_size: int
) -> float:
    """Mean NLL per target token (EOS included, no label smoothing) over every pair."""
    total, tokens = 0.0, 0
    lengths = pairs.source_lengths + pairs.target_lengths
    for indices in _length_sorted_batches(lengths, batch_size):
        source, source_lengths, target, _ = pairs.batch(indices).to(device).tensors
        logits = model(source, source_lengths, target[:, :-1])
        labels = target[:, 1:]
        total += float(
            F.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten(), ignore_index=PAD, reduction="sum"
            )
        )
        tokens += int((labels != PAD).sum())
    return total / tokens


@torch.no_grad()
def translate(
    model: nn.Module,
    pairs: EncodedPairs,
    device: torch.device,
    settings: DecodeSettings,
    batch_size: int,
    greedy: bool = False,
) -> list[list[int]]:
    """Subword ids of the translation of every source of ``pairs``, in order; batches are formed
    by source length, so that little of each is padding."""
    model = _model(model)
    outputs: list[list[int]] = [[] for _ in range(len(pairs))]
    for indices in _length_sorted_batches(pairs.source_lengths, batch_size):
        source, source_lengths, _, _ = pairs.batch(indices).to(device).tensors
        if greedy:
            hypotheses = greedy_decode(model, source, source_lengths, settings.max_length)
        else:
            hypotheses, _ = beam_search(model, source, source_lengths, settings)
        for index, hypothesis in zip(indices.tolist(), hypotheses, strict=True):
            outputs[index] = hypothesis
    return outputs


def evaluate_split(
    model: nn.Module, split: TranslationSplit, device: torch.device
) -> tuple[dict[str, float], list[str]]:
    """Metrics of ``split`` and the beam translations (empty without BLEU). The caller sets eval
    mode (the trainer does)."""
    nll = token_nll(model, split.pairs, device, split.batch_size)
    metrics = {"nll": nll, "perplexity": perplexity(nll)}
    translations: list[str] = []
    if split.bleu:
        ids = translate(model, split.pairs, device, split.settings, split.decode_batch_size)
        translations = split.subword.decode(ids)
        metrics["bleu"] = corpus_bleu(translations, split.references)[0]
        metrics["bleu_uncased"] = corpus_bleu(translations, split.references, uncased=True)[0]
        if split.greedy:
            greedy_ids = translate(
                model, split.pairs, device, split.settings, split.decode_batch_size, greedy=True
            )
            metrics["bleu_greedy"] = corpus_bleu(
                split.subword.decode(greedy_ids), split.references
            )[0]
    return metrics, translations
