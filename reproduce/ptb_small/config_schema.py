"""PTB's configuration keys (ptb_small and ptb_large): types, ranges and why
(``reproduce.harness.run.schema``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reproduce.harness.run.schema import ConfigSchema, ConfigView, Field, count, fraction

#: Mikolov's PTB: 10,000 words, and its splits' tokens with <eos> (the project's paper-facts.md).
VOCABULARY = 10_000
SPLIT_TOKENS = {"train": 929_589, "valid": 73_760, "test": 82_430}
FLOAT_BYTES = 4
#: Values an LSTM step keeps per hidden unit for its backward pass, at least (four gates, the
#: cell state and its tanh).
LSTM_SAVED_PER_UNIT = 6


def activation_bytes(model: Mapping[str, Any], data: Mapping[str, Any], micro_batch: int) -> float:
    """Lower bound of a micro-batch's activations: the logits over the vocabulary of every token
    of the window (kept for the softmax's backward), and every LSTM step of every layer."""
    tokens = micro_batch * int(data["bptt"])
    logits = tokens * int(model["vocab_size"])
    lstm = tokens * int(model["num_layers"]) * int(model["hidden_size"]) * LSTM_SAVED_PER_UNIT
    return float((logits + lstm) * FLOAT_BYTES)


def evaluation_rows_fit(view: ConfigView) -> str | None:
    """An evaluation reads its split as data.eval_rows rows, each of which needs a token to read
    and one to predict."""
    rows = int(view.data["eval_rows"])
    for split in ("valid", "test"):
        tokens = int(view.data[f"{split}_tokens"])
        if tokens < 2 * rows:
            return (
                f"data.{split}_tokens={tokens} with data.eval_rows={rows}: an evaluation reads "
                f"the split as {rows} rows of at least 2 tokens; use data.eval_rows <= "
                f"{max(1, tokens // 2)} or more tokens"
            )
    return None


SCHEMA = ConfigSchema(
    model={
        "vocab_size": count(
            VOCABULARY, why="every PTB word id needs an output (10,000 words, Zaremba et al.)"
        ),
        "hidden_size": count(why="LSTM units"),
        "num_layers": count(why="stacked LSTM layers"),
        "dropout": fraction("a drop probability (Zaremba et al. 2014: 0, 0.5, 0.65)"),
        "init_scale": Field(
            float,
            low=0.0,
            low_open=True,
            why="weights start uniform in [-s, s] (Zaremba et al. 2014: 0.1, 0.05, 0.04)",
        ),
    },
    data={
        "source": Field(str, choices=("local", "hub")),
        "train_tokens": count(1, SPLIT_TOKENS["train"], "PTB's training split"),
        "valid_tokens": count(2, SPLIT_TOKENS["valid"], "PTB's validation split"),
        "test_tokens": count(2, SPLIT_TOKENS["test"], "PTB's test split"),
        "bptt": count(why="tokens per truncated-BPTT window (Zaremba et al.: 20, 35)"),
        "eval_rows": count(why="rows an evaluation reads its split as"),
    },
    rules=(evaluation_rows_fit,),
    activation_bytes=activation_bytes,
)
