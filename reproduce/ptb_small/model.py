"""The word-level LSTM language model of Zaremba et al. 2014 (arXiv 1409.2329, Section 4)."""

from __future__ import annotations

import torch
from torch import nn

LSTMState = tuple[torch.Tensor, torch.Tensor]


class PTBLanguageModel(nn.Module):
    """Embedding -> stacked LSTM -> linear softmax layer, with untied input and output embeddings.

    Dropout is applied to the non-recurrent connections only (Zaremba et al. 2014, Section 3): on
    the embedded inputs, between the LSTM layers and on the last layer's output, as TensorFlow's
    ptb_word_lm.py does (input dropout plus a DropoutWrapper on each cell's output). Every
    parameter, biases included, starts uniform in [-init_scale, init_scale], as in Zaremba's
    main.lua (``paramx:uniform(-init_weight, init_weight)``); torch's LSTM has two bias vectors
    per layer (input and recurrent), both initialized so.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int = 2,
        dropout: float = 0.0,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.input_dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            hidden_size,
            hidden_size,
            num_layers,
            batch_first=True,  # rows (streams) first, so a Batch split by rows keeps each state
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output_dropout = nn.Dropout(dropout)
        self.softmax = nn.Linear(hidden_size, vocab_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -init_scale, init_scale)

    def forward(
        self, inputs: torch.Tensor, state: LSTMState | None = None
    ) -> tuple[torch.Tensor, LSTMState]:
        """inputs: (rows, time) token ids -> logits (rows, time, vocab) and the final (h, c),
        each (num_layers, rows, hidden); ``state=None`` starts from zeros."""
        embedded = self.input_dropout(self.embedding(inputs))
        outputs, state = self.lstm(embedded, state)
        return self.softmax(self.output_dropout(outputs)), state
