"""MNIST-LSTM's configuration keys: types, ranges and why (``reproduce.harness.run.schema``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reproduce.harness.run.schema import ConfigSchema, Field, count

#: MNIST's training split less the held-out validation images, and its test split (LeCun et al.;
#: TensorFlow's classic input_data split: 55,000 / 5,000 / 10,000). A larger count would be cut
#: to these without a word, so it is refused.
TRAIN_IMAGES, VALID_IMAGES, TEST_IMAGES = 55_000, 5_000, 10_000
#: Rows read per image (one LSTM step each) and float32 bytes.
ROWS, FLOAT_BYTES = 28, 4
#: Values an LSTM step keeps per hidden unit for its backward pass, at least: the four gate
#: activations, the cell state and its tanh (measured: about 17 per unit with torch's CPU LSTM).
LSTM_SAVED_PER_UNIT = 6


def activation_bytes(model: Mapping[str, Any], data: Mapping[str, Any], micro_batch: int) -> float:
    """Lower bound of a micro-batch's activations: every row step of the LSTM."""
    return float(micro_batch * ROWS * LSTM_SAVED_PER_UNIT * int(model["hidden_size"]) * FLOAT_BYTES)


SCHEMA = ConfigSchema(
    model={"hidden_size": count(why="LSTM units")},
    data={
        "source": Field(str, choices=("local", "hub")),
        "train_examples": count(1, TRAIN_IMAGES, "MNIST's 60,000 less 5,000 held out"),
        "valid_examples": count(1, VALID_IMAGES, "the 5,000 held-out training images"),
        "test_examples": count(1, TEST_IMAGES, "MNIST's test split"),
    },
    activation_bytes=activation_bytes,
)
