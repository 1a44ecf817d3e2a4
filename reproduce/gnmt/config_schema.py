"""GNMT's configuration keys: types, ranges and why (``reproduce.harness.run.schema``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reproduce.datasets.sequence_tasks import MAX_VOCAB, TASKS
from reproduce.datasets.wmt import NEWSTEST2014_PAIRS
from reproduce.harness.run.schema import ConfigSchema, ConfigView, Field, count, fraction

from .subword import BOS, EOS, PAD, UNK

#: Pieces every subword model has before it learns any: the four specials (PAD, UNK, BOS, EOS)
#: and, with SentencePiece's byte fallback (subword.py), the 256 bytes. The text's own
#: characters come on top; SentencePiece says how many when there are too few (a data error).
SPECIAL_PIECES = len({PAD, UNK, BOS, EOS})
SMALLEST_VOCABULARY = SPECIAL_PIECES + 256 + 1
#: BOS + one subword + EOS: the shortest pair the length filter can keep.
SHORTEST_PAIR = 3
FLOAT_BYTES = 4
#: Values an LSTM step keeps per hidden unit for its backward pass, at least.
LSTM_SAVED_PER_UNIT = 6
#: Keys that only mean something for corpus=newstest2014 (slices of the shipped 3,003 pairs),
#: and for the copy and reverse tasks (sequence_tasks.py).
NEWSTEST_KEYS = ("train_start", "train_stop", "eval_start", "eval_stop", "eval_on_train")
TASK_KEYS = (
    "task_vocab",
    "task_min_length",
    "task_max_length",
    "task_train_pairs",
    "task_held_out_pairs",
)


def activation_bytes(model: Mapping[str, Any], data: Mapping[str, Any], micro_batch: int) -> float:
    """Lower bound of a micro-batch of the longest pairs: the logits over the vocabulary of
    every target token, and every LSTM step of the encoder's and decoder's layers."""
    tokens = micro_batch * int(data["max_length"])
    logits = tokens * int(model["vocab_size"])
    layers = 2 * int(model["num_layers"])
    lstm = tokens * layers * int(model["hidden_size"]) * LSTM_SAVED_PER_UNIT
    return float((logits + lstm) * FLOAT_BYTES)


def vocabulary_fits(view: ConfigView) -> str | None:
    """The model needs an output for every subword id."""
    model, data = int(view.model["vocab_size"]), int(view.data["vocab_size"])
    if model < data:
        return (
            f"model.vocab_size={model} is below data.vocab_size={data}: the model needs an "
            f"output for every subword id; use model.vocab_size >= {data}"
        )
    return None


def ignored_keys(view: ConfigView) -> str | None:
    """A --set data key the configured corpus does not read would change nothing."""
    corpus = view.data["corpus"]
    for keys, users in ((NEWSTEST_KEYS, ("newstest2014",)), (TASK_KEYS, TASKS)):
        ignored = [key for key in keys if f"data.{key}" in view.user_keys]
        if ignored and corpus not in users:
            return (
                f"--set data.{ignored[0]}: only used with data.corpus={' or '.join(users)}, and "
                f"the corpus is {corpus}"
            )
    return None


def task_sequences_suffice(view: ConfigView) -> str | None:
    """The copy and reverse tasks draw distinct sequences for training, validation and test
    (sequence_tasks.py): there must be that many, or the drawing never ends."""
    data = view.data
    if data["corpus"] not in TASKS:
        return None
    shortest, longest = int(data["task_min_length"]), int(data["task_max_length"])
    if shortest > longest:
        return (
            f"data.task_min_length={shortest} is above data.task_max_length={longest}; use "
            "min <= max"
        )
    needed = int(data["task_train_pairs"]) + 2 * int(data["task_held_out_pairs"])
    vocab = int(data["task_vocab"])
    available = 0
    for length in range(shortest, longest + 1):
        available += vocab**length
        if available >= needed:
            return None
    return (
        f"data.task_vocab={vocab} with lengths {shortest} to {longest} gives {available} distinct "
        f"sequences, fewer than the {needed} drawn (task_train_pairs + 2 x task_held_out_pairs); "
        "use more words, longer sequences or fewer pairs"
    )


def newstest_slices(view: ConfigView) -> str | None:
    """Slices of newstest2014 that hold pairs."""
    data = view.data
    if data["corpus"] != "newstest2014":
        return None
    slices = [("train_start", "train_stop")]
    if not data["eval_on_train"]:
        slices.append(("eval_start", "eval_stop"))
    for start_key, stop_key in slices:
        start, stop = int(data[start_key]), int(data[stop_key])
        if not start < stop:
            return (
                f"data.{start_key}={start}, data.{stop_key}={stop}: the slice of newstest2014 "
                f"holds no pair; use 0 <= {start_key} < {stop_key} <= {NEWSTEST2014_PAIRS}"
            )
    return None


def whole(why: str = "") -> Field:
    return count(0, why=why)


SCHEMA = ConfigSchema(
    model={
        "vocab_size": count(SMALLEST_VOCABULARY, why="outputs for every subword id"),
        "hidden_size": count(why="LSTM units (the reference: 1024)"),
        "num_layers": count(2, why="GNMT: a bidirectional first encoder layer, then more"),
        "dropout": fraction("a drop probability (the reference: 0.2)"),
        "label_smoothing": fraction("a share of the target's probability (the reference: 0.1)"),
        "init_width_scaled": Field(bool),
    },
    data={
        "source": Field(str, choices=("local", "hub")),
        "corpus": Field(str, choices=("wmt16", "newstest2014", *TASKS)),
        "vocab_size": count(
            SMALLEST_VOCABULARY, why="4 special and 256 byte pieces, and the text's characters"
        ),
        "subword_sentences": whole("sentences the subword model learns from; 0: all"),
        "subword_cache": Field(str, why="a folder; empty: $DATE_REPRO_CACHE or ~/.cache"),
        "max_length": count(SHORTEST_PAIR, why="tokens of a training pair's side, BOS and EOS in"),
        "latin1_filter": Field(bool),
        "train_pairs": whole("0: every pair the filter keeps"),
        "valid_max_length": count(SHORTEST_PAIR, why="tokens of a validation side"),
        "bucket_pool": count(why="batches sorted by length together"),
        "eval_batch_size": count(why="pairs per evaluation batch"),
        "decode_batch_size": count(why="sources per decoding batch"),
        "bleu": Field(bool),
        "valid_bleu": Field(bool),
        "greedy_bleu": Field(bool),
        "beam_size": count(why="hypotheses kept by beam search (the reference: 5)"),
        "length_norm_factor": Field(float, low=0.0, why="GNMT's length penalty alpha (0.6)"),
        "length_norm_constant": Field(float, low=0.0, why="the penalty's constant (5.0)"),
        "coverage_penalty": Field(float, low=0.0, why="GNMT's coverage penalty beta (0.1)"),
        "max_decode_length": count(why="subwords a translation may have"),
        "train_start": count(0, NEWSTEST2014_PAIRS, "a line of newstest2014"),
        "train_stop": count(0, NEWSTEST2014_PAIRS, "a line of newstest2014"),
        "eval_start": count(0, NEWSTEST2014_PAIRS, "a line of newstest2014"),
        "eval_stop": count(0, NEWSTEST2014_PAIRS, "a line of newstest2014"),
        "eval_on_train": Field(bool),
        "task_vocab": count(2, MAX_VOCAB, "words of the copy and reverse tasks"),
        "task_min_length": count(why="words of the shortest task sequence"),
        "task_max_length": count(why="words of the longest task sequence"),
        "task_train_pairs": count(why="task sequences to train on"),
        "task_held_out_pairs": count(why="task sequences in each of validation and test"),
    },
    rules=(vocabulary_fits, ignored_keys, newstest_slices, task_sequences_suffice),
    activation_bytes=activation_bytes,
)
