"""The MNIST-LSTM model: each 28x28 image read as 28 time steps of 28 pixels."""

from __future__ import annotations

import torch
from torch import nn


class RowLSTMClassifier(nn.Module):
    """One LSTM layer over the image rows and a linear head on the last hidden state.

    The paper's MNIST application (You et al., SC'19, Section 5) reads each image as a sequence;
    input size 28 and hidden size 128 follow the project's issue (the paper's exact size could not
    be read).
    """

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (batch, rows, columns) -> logits (batch, classes)."""
        outputs, _ = self.lstm(images)
        return self.head(outputs[:, -1])
