"""Sentence pairs as subword ids: length filtering, and length-bucketed batches of B pairs.

Training batches follow the reference's "sharding" order (NVIDIA DeepLearningExamples GNMT
train.py ``--batching sharding --shard-size 80``; the MLPerf reference README, "Training data
order": "dataset is randomly shuffled and split into chunks of 80 batches each. Within each chunk
it's sorted by (src + tgt) sequence length and then batches are reshuffled within each chunk"):
the pairs are shuffled every epoch, cut into windows of ``pool`` global batches, each window is
sorted by length and cut into batches, and the batches of a window are shuffled. The sort key is
the longer side's length, then the sum (the MLPerf text sorts by the sum alone): on newstest2014
that halves the padding of a batch, whose source and target are each padded to their own longest.
So a batch holds pairs of similar length and padding stays small, while every step still has
exactly B pairs (the batch size counts sentence pairs, as in the reference) and a run of E epochs
reads every pair E times. The stream is a pure function of (seed, step): resumable at any step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reproduce.datasets.wmt import ParallelText
from reproduce.harness.run.experiment import Batch, rank_share

from .subword import BOS, EOS, PAD, SubwordModel


@dataclass(frozen=True)
class FilterCounts:
    """What the training filter did, for the record."""

    total: int = 0
    empty: int = 0  # a side is empty (or whitespace only)
    not_latin1: int = 0  # a side has a character latin-1 cannot encode (reference filter)
    too_long: int = 0  # a side is longer than max_length subwords (BOS and EOS included)
    kept: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "empty": self.empty,
            "not_latin1": self.not_latin1,
            "too_long": self.too_long,
            "kept": self.kept,
        }


class EncodedPairs:
    """Source and target id sequences (BOS ... EOS) in flat arrays with offsets."""

    def __init__(self, sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> None:
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        self.source_tokens, self.source_offsets = _flatten(sources)
        self.target_tokens, self.target_offsets = _flatten(targets)
        self.source_lengths = np.diff(self.source_offsets).astype(np.int64)
        self.target_lengths = np.diff(self.target_offsets).astype(np.int64)
        if len(sources) and (self.source_lengths.min() < 1 or self.target_lengths.min() < 2):
            raise ValueError("every source needs a token and every target BOS and EOS")

    def __len__(self) -> int:
        return len(self.source_lengths)

    def batch(self, indices: np.ndarray) -> Batch:
        """Pairs ``indices`` as a Batch (source (B, S), source lengths, target (B, T), target
        lengths), padded with PAD to the longest source and target among them."""
        source = _pad(self.source_tokens, self.source_offsets, self.source_lengths, indices)
        target = _pad(self.target_tokens, self.target_offsets, self.target_lengths, indices)
        return Batch(
            (
                torch.from_numpy(source),
                torch.from_numpy(self.source_lengths[indices]),
                torch.from_numpy(target),
                torch.from_numpy(self.target_lengths[indices]),
            )
        )

    def source(self, index: int) -> list[int]:
        start, stop = self.source_offsets[index], self.source_offsets[index + 1]
        return self.source_tokens[start:stop].tolist()

    def target(self, index: int) -> list[int]:
        start, stop = self.target_offsets[index], self.target_offsets[index + 1]
        return self.target_tokens[start:stop].tolist()


def _flatten(sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # int32 storage: WMT16 is about 10^8 subwords per side; batches are widened to int64
    tokens = np.fromiter(
        (token for sequence in sequences for token in sequence), dtype=np.int32, count=offsets[-1]
    )
    return tokens, offsets


def _pad(
    tokens: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    width = int(lengths[indices].max()) if len(indices) else 0
    columns = np.arange(width)
    positions = offsets[indices][:, None] + columns[None, :]
    inside = columns[None, :] < lengths[indices][:, None]
    values = tokens[np.minimum(positions, max(len(tokens) - 1, 0))].astype(np.int64)
    return np.where(inside, values, PAD)


def encode_pairs(
    text: ParallelText,
    subword: SubwordModel,
    max_length: int | None = None,
    latin1_filter: bool = False,
    drop_empty: bool = True,
) -> tuple[EncodedPairs, FilterCounts, np.ndarray]:
    """Encode every pair as BOS + subwords + EOS on both sides (the reference's
    ``Tokenizer.segment``) and filter it: empty sides (``drop_empty``), sides latin-1 cannot
    encode (``latin1_filter``, the reference's scripts/filter_dataset.py), and sides longer than
    ``max_length`` tokens with BOS and EOS (the reference's ``--train-max-length 50``, which
    "includes special BOS and EOS tokens"). Returns (pairs, counts, kept line numbers)."""
    counts = {"empty": 0, "not_latin1": 0, "too_long": 0}
    candidates = []
    for index, (source, target) in enumerate(zip(text.source, text.target, strict=True)):
        if drop_empty and (not source or not target):
            counts["empty"] += 1
        elif latin1_filter and not (_latin1(source) and _latin1(target)):
            counts["not_latin1"] += 1
        else:
            candidates.append(index)
    source_ids = subword.encode([text.source[i] for i in candidates])
    target_ids = subword.encode([text.target[i] for i in candidates])
    sources, targets, kept = [], [], []
    for index, source, target in zip(candidates, source_ids, target_ids, strict=True):
        source = [BOS, *source, EOS]
        target = [BOS, *target, EOS]
        if max_length is not None and max(len(source), len(target)) > max_length:
            counts["too_long"] += 1
            continue
        sources.append(source)
        targets.append(target)
        kept.append(index)
    result = FilterCounts(total=len(text), kept=len(kept), **counts)
    return EncodedPairs(sources, targets), result, np.asarray(kept, dtype=np.int64)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class BucketedPairs:
    """The training pairs as a ``TrainData``: a deterministic, resumable stream of global batches
    of B pairs, sorted by length within windows of ``pool`` batches (module docstring)."""

    pairs: EncodedPairs
    pool: int = 80  # batches per sorting window (the reference's shard size)
    _epoch_cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.pairs) == 0:
            raise ValueError("no training pairs left after filtering")
        if self.pool < 1:
            raise ValueError(f"pool must be >= 1, got {self.pool}")

    @property
    def size(self) -> int:
        return len(self.pairs)

    def steps_per_epoch(self, batch_size: int) -> float:
        return self.size / batch_size

    def window_batches(self, batch_size: int) -> int:
        """Batches per sorting window: ``pool``, but never a window longer than an epoch (a longer
        one would put copies of the same pair, of equal length, side by side in a batch)."""
        return max(1, min(self.pool, self.size // batch_size))

    def _epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        if key not in self._epoch_cache:
            if len(self._epoch_cache) > 2:
                self._epoch_cache.clear()
            self._epoch_cache[key] = np.random.default_rng([seed, epoch]).permutation(self.size)
        return self._epoch_cache[key]

    def window(self, batch_size: int, seed: int, window: int) -> np.ndarray:
        """Window ``window``'s batches: a (window_batches, batch_size) array of pair indices."""
        batches = self.window_batches(batch_size)
        start = window * batches * batch_size
        stop = start + batches * batch_size
        parts = []
        position = start
        while position < stop:
            epoch, offset = divmod(position, self.size)
            take = min(stop - position, self.size - offset)
            parts.append(self._epoch_order(seed, epoch)[offset : offset + take])
            position += take
        indices = np.concatenate(parts)
        source = self.pairs.source_lengths[indices]
        target = self.pairs.target_lengths[indices]
        # by the longer side, then by the sum (np.lexsort: last key first; stable)
        order = np.lexsort((source + target, np.maximum(source, target)))
        indices = indices[order].reshape(batches, batch_size)
        shuffle = np.random.default_rng([seed, window, 1]).permutation(batches)
        return indices[shuffle]

    def stream(
        self, batch_size: int, seed: int, start_step: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        share = rank_share(batch_size, shard)
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        batches = self.window_batches(batch_size)
        step = start_step
        current, order = -1, None
        while True:
            window, index = divmod(step, batches)
            if window != current:
                current, order = window, self.window(batch_size, seed, window)
            rows = order[index][share]
            yield self.pairs.batch(rows)
            step += 1

    def batch_statistics(self, batch_size: int, seed: int = 0, max_batches: int = 1000) -> dict:
        """Tokens per global batch and the share of padding, over the first epoch's batches (at
        most ``max_batches``): what a run at ``batch_size`` reads (the record's tokens per batch).
        """
        steps = max(1, min(max_batches, round(self.steps_per_epoch(batch_size))))
        source_tokens, target_tokens, padded = [], [], []
        for batch, _ in zip(self.stream(batch_size, seed), range(steps), strict=False):
            source, source_lengths, target, target_lengths = batch.tensors
            source_tokens.append(int(source_lengths.sum()))
            target_tokens.append(int(target_lengths.sum()))
            padded.append(source.numel() + target.numel())
        real = sum(source_tokens) + sum(target_tokens)
        return {
            "batches_measured": steps,
            "source_tokens_per_batch": float(np.mean(source_tokens)),
            "target_tokens_per_batch": float(np.mean(target_tokens)),
            "padding_fraction": 1.0 - real / sum(padded),
        }


def fingerprint(texts: Sequence[str]) -> str:
    """sha256 of the texts (each followed by a newline), for provenance in the record."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def length_summary(pairs: EncodedPairs) -> dict[str, Any]:
    """Mean and max source/target lengths in subwords (BOS and EOS included)."""
    if len(pairs) == 0:
        return {}
    return {
        "source_mean": float(pairs.source_lengths.mean()),
        "source_max": int(pairs.source_lengths.max()),
        "target_mean": float(pairs.target_lengths.mean()),
        "target_max": int(pairs.target_lengths.max()),
    }
