"""Token streams for stateful truncated BPTT (Zaremba et al. 2014, arXiv 1409.2329, Section 4).

The training tokens are laid out as B contiguous rows (``batchify``, the layout of TensorFlow's
ptb_producer in models/tutorials/rnn/ptb/reader.py); step j reads the j-th ``bptt``-long window of
every row, and its targets are the same window shifted by one token. The LSTM state of each row is
carried from one window to the next, so over an epoch every row is read as one unbroken stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from reproduce.datasets.ptb import batchify
from reproduce.harness.run.experiment import Batch


class BPTTStream:
    """The training split as an infinite stream of (inputs, targets) windows; a ``TrainData``.

    For a global batch B the tokens are cut into B contiguous rows of ``n = len(tokens) // B``
    columns (the remainder is dropped, as in ptb_producer). An epoch is ``(n - 1) // bptt`` steps
    (an integer: the last, partial window is dropped, as in ptb_producer's ``epoch_size``); each
    step yields ``inputs = rows[:, j*bptt : (j+1)*bptt]`` and ``targets`` one column further.

    Every epoch has the same layout and order, as in Zaremba et al.'s and TensorFlow's training
    loops, so ``seed`` does not change the stream (the model's initialization carries the seed).
    The first window of every epoch has ``reset_state=True``: the trainer then starts each row from
    a zero state, as both references do at the start of an epoch.
    """

    def __init__(self, tokens: torch.Tensor, bptt: int) -> None:
        if tokens.dim() != 1:
            raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1, got {bptt}")
        self.tokens = tokens
        self.bptt = bptt

    def steps_per_epoch(self, batch_size: int) -> int:
        columns = self.tokens.numel() // batch_size
        steps = (columns - 1) // self.bptt
        if steps < 1:
            raise ValueError(
                f"{self.tokens.numel()} training tokens are too few for batch {batch_size} "
                f"with bptt {self.bptt}: rows of {columns} tokens hold no full window"
            )
        return steps

    def stream(
        self, batch_size: int, seed: int, start_step: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        """Windows from ``start_step`` on (resumable); ``shard=(rank, world_size)`` gives this
        rank its contiguous block of ``batch_size // world_size`` rows of every window."""
        rank, world_size = shard
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} is not divisible by world_size={world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} is outside world_size={world_size}")
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        steps = self.steps_per_epoch(batch_size)
        per_rank = batch_size // world_size
        rows = batchify(self.tokens, batch_size)[rank * per_rank : (rank + 1) * per_rank]
        step = start_step
        while True:
            window = step % steps
            start = window * self.bptt
            inputs = rows[:, start : start + self.bptt]
            targets = rows[:, start + 1 : start + self.bptt + 1]
            yield Batch((inputs, targets), reset_state=window == 0)
            step += 1


@dataclass(frozen=True)
class TokenSplit:
    """An evaluation split: its tokens and the number of rows it is read as (see ``evaluate``)."""

    tokens: torch.Tensor
    rows: int

    @property
    def scored_tokens(self) -> int:
        """Tokens whose probability the evaluation scores: ``rows * (columns - 1)``."""
        return self.rows * (self.tokens.numel() // self.rows - 1)
