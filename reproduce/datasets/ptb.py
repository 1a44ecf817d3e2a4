"""Penn Treebank (word level, Mikolov's preprocessing) and the batching used for LMs.

The text files (data/ptb/ptb.{train,valid,test}.txt.gz) have one sentence per line,
already lower-cased, with rare words as ``<unk>`` and numbers as ``N`` (Mikolov's
"simple-examples", as used by Zaremba et al. 2014 and TensorFlow's ptb_word_lm).
Tokens are whitespace-split words with ``<eos>`` appended at each line end; the
vocabulary (10,000 types) comes from the training split only. Provenance and
checksums: data/README.md.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reproduce.datasets import _hub
from reproduce.datasets.integrity import DATA_ROOT, DataError, read_verified
from reproduce.datasets.integrity import expected_content_sha256 as _expected

__all__ = [
    "EOS",
    "PTB_HUB_CONFIG",
    "PTB_HUB_ID",
    "SOURCES",
    "PTBCorpus",
    "batchify",
    "build_vocab",
    "load_ptb",
    "tokenize_lines",
]

EOS = "<eos>"
SOURCES = ("local", "hub")
#: Hugging Face copy of the same text (formerly the canonical name "ptb_text_only"),
#: config "penn_treebank", splits train/validation/test, one line per "sentence".
PTB_HUB_ID = "ptb-text-only/ptb_text_only"
PTB_HUB_CONFIG = "penn_treebank"

_SPLITS = ("train", "valid", "test")
_HUB_SPLITS = {"train": ("train",), "valid": ("validation", "valid"), "test": ("test",)}


@dataclass
class PTBCorpus:
    """Token ids of the three PTB splits and the training vocabulary.

    ``vocab[i]`` is the word with id ``i``: ordered by descending training frequency,
    ties broken alphabetically, so ids are deterministic.
    """

    vocab: list[str]
    word_to_id: dict[str, int] = field(repr=False)
    train: torch.Tensor = field(repr=False)
    valid: torch.Tensor = field(repr=False)
    test: torch.Tensor = field(repr=False)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return (
            f"PTBCorpus(vocab_size={self.vocab_size}, train={self.train.numel()}, "
            f"valid={self.valid.numel()}, test={self.test.numel()})"
        )


def tokenize_lines(lines: Iterable[str]) -> list[str]:
    """Whitespace-split each line and append ``<eos>`` (ptb_word_lm's ``_read_words``)."""
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


def _text_lines(text: str) -> list[str]:
    """Lines of a text file; a final newline does not start another line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def build_vocab(train_tokens: Iterable[str]) -> list[str]:
    """Words sorted by descending count, then alphabetically (as in ptb_word_lm)."""
    counts = Counter(train_tokens)
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _to_ids(tokens: list[str], word_to_id: dict[str, int], split: str, where: str) -> torch.Tensor:
    try:
        ids = [word_to_id[w] for w in tokens]
    except KeyError:
        oov = sorted({w for w in tokens if w not in word_to_id})
        raise DataError(
            f"{where}: the {split} split has {len(oov)} word type(s) outside the training "
            f"vocabulary (e.g. {oov[:5]}); the PTB data is not the expected Mikolov copy"
        ) from None
    return torch.tensor(ids, dtype=torch.int64)


def _corpus(split_tokens: dict[str, list[str]], where: str) -> PTBCorpus:
    vocab = build_vocab(split_tokens["train"])
    word_to_id = {w: i for i, w in enumerate(vocab)}
    ids = {s: _to_ids(split_tokens[s], word_to_id, s, where) for s in _SPLITS}
    return PTBCorpus(vocab=vocab, word_to_id=word_to_id, **ids)


def _find_dir(data_dir: Path) -> Path:
    """``data_dir``, or its ``ptb/`` subfolder if the files are there instead."""
    for candidate in (data_dir, data_dir / "ptb"):
        if any(
            (candidate / f"ptb.{s}.txt.gz").is_file() or (candidate / f"ptb.{s}.txt").is_file()
            for s in _SPLITS
        ):
            return candidate
    return data_dir


def _load_local(data_dir: Path | None, verify: bool) -> PTBCorpus:
    directory = DATA_ROOT / "ptb" if data_dir is None else _find_dir(data_dir)
    split_tokens = {}
    for split in _SPLITS:
        gz = directory / f"ptb.{split}.txt.gz"
        plain = directory / f"ptb.{split}.txt"
        path = plain if not gz.is_file() and plain.is_file() else gz
        expected = _expected(f"ptb/ptb.{split}.txt.gz") if verify else None
        try:
            text = read_verified(path, expected).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
        split_tokens[split] = tokenize_lines(_text_lines(text))
    return _corpus(split_tokens, str(directory))


def _load_hub(data_dir: Path | None) -> PTBCorpus:
    if data_dir is None:
        where = PTB_HUB_ID
        obj: Any = _hub.load_from_hub(PTB_HUB_ID, PTB_HUB_CONFIG)
    else:
        where = str(data_dir)
        if not _hub.is_saved_dataset_dir(data_dir) and _hub.is_saved_dataset_dir(data_dir / "ptb"):
            data_dir = data_dir / "ptb"
        obj = _hub.load_from_dir(data_dir)
        datasets = _hub.import_datasets()
        if not isinstance(obj, datasets.DatasetDict):
            raise DataError(
                f"{where}: expected a DatasetDict with train/validation/test splits "
                "(DatasetDict.save_to_disk), got a single Dataset"
            )
    split_tokens = {}
    for split in _SPLITS:
        ds = _hub.pick_split(obj, _HUB_SPLITS[split], where)
        if "sentence" not in ds.column_names:
            raise DataError(
                f"{where}: expected a 'sentence' column (as in {PTB_HUB_ID}), "
                f"it has {ds.column_names}"
            )
        split_tokens[split] = tokenize_lines(ds["sentence"])
    return _corpus(split_tokens, where)


def load_ptb(
    source: str = "local",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify: bool = True,
) -> PTBCorpus:
    """Load PTB as token ids with a training-split vocabulary.

    source="local": ptb.{train,valid,test}.txt(.gz) in ``data_dir`` (or its ``ptb/``
    subfolder), default data/ptb/, checked against the canonical content SHA-256 in
    data/checksums.json unless ``verify=False``.

    source="hub": ``datasets.load_dataset("ptb-text-only/ptb_text_only",
    "penn_treebank")`` (field "sentence"); with ``data_dir``, a directory written by
    ``DatasetDict.save_to_disk`` (splits train, validation or valid, test) or data files
    for ``load_dataset(data_dir)``.

    Raises DataError if data is missing, corrupted, unreachable, or valid/test contain a
    word outside the training vocabulary (the real data has none).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown PTB source {source!r}; valid choices: {list(SOURCES)}")
    path = None if data_dir is None else Path(data_dir)
    if source == "local":
        return _load_local(path, verify)
    return _load_hub(path)


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Lay a 1-D token stream out as ``batch_size`` contiguous rows of equal length.

    Returns a (batch_size, n) view with ``n = len(tokens) // batch_size``; the remainder
    is dropped. Row ``i`` is ``tokens[i*n:(i+1)*n]``, so each row is an unbroken stream
    (the layout of TensorFlow's ptb_producer; PyTorch's word_language_model uses the
    transpose).
    """
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = tokens.numel() // batch_size
    if n == 0:
        raise ValueError(f"{tokens.numel()} tokens are too few for batch_size {batch_size}")
    return tokens[: n * batch_size].view(batch_size, n)
