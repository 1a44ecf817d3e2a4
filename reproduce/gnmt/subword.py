"""The shared subword vocabulary: a SentencePiece BPE model trained on the training text.

Why SentencePiece rather than the reference's subword-nmt BPE. NVIDIA's GNMT reference
(DeepLearningExamples PyTorch/Translation/GNMT, scripts/wmt16_en_de.sh) Moses-tokenizes the raw
text, learns 32,000 shared BPE merges with subword-nmt, and detokenizes its output with Moses
before sacreBLEU. SentencePiece (Kudo and Richardson 2018) learns the same kind of model (BPE,
shared by both languages) directly on raw text, so

- no Moses tokenizer or detokenizer is needed: decoding a hypothesis gives back raw text, which
  is what detokenized sacreBLEU scores (the reference's metric);
- ``byte_fallback`` spells any character outside the vocabulary as its UTF-8 bytes, so an unknown
  character (a rare symbol, another script) is encoded and decoded losslessly instead of becoming
  ``<unk>``; the reference instead drops every training pair that latin-1 cannot encode
  (scripts/filter_dataset.py), which ``data.latin1_filter`` reproduces;
- it is one well-kept library with a Python API, instead of two Perl scripts and a CLI.

The vocabulary size counts every piece (the 4 special tokens and 256 byte pieces included);
32,000 as in the reference. Special ids are those of the reference's seq2seq/data/config.py:
PAD 0, UNK 1, BOS 2, EOS 3. The text is not normalized (``identity``), so what the model emits is
exactly what BLEU scores.

A trained model is cached under a hash of everything that determines it (the training sentences
and the options), as ``spm-<hash>.model`` in the cache folder, written atomically: a sweep and a
rerun train it once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproduce.datasets.integrity import DataError
from reproduce.harness.core.io import atomic_write

PAD, UNK, BOS, EOS = 0, 1, 2, 3
#: Environment variable naming the cache folder (default ``~/.cache/date-repro``).
CACHE_ENV = "DATE_REPRO_CACHE"
#: Bumped when the training options below change meaning, so that old cache entries are not reused.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$DATE_REPRO_CACHE`` or ``~/.cache/date-repro``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "date-repro")


def _import_sentencepiece() -> Any:
    try:
        import sentencepiece
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError(
            "the gnmt experiment needs sentencepiece and sacrebleu: pip install 'date-repro[nmt]'"
        ) from exc
    return sentencepiece


@dataclass(frozen=True)
class SubwordOptions:
    """What determines the model besides its training text (SentencePiece trainer options)."""

    vocab_size: int = 32_000
    model_type: str = "bpe"
    #: Share of characters covered by the vocabulary; the rest are spelled as bytes. 0.9995 is
    #: SentencePiece's default (its README recommends it for languages with large character sets;
    #: with byte fallback nothing is lost either way).
    character_coverage: float = 0.9995

    def trainer_arguments(self) -> dict[str, Any]:
        return {
            "vocab_size": self.vocab_size,
            "model_type": self.model_type,
            "character_coverage": self.character_coverage,
            "byte_fallback": True,
            "pad_id": PAD,
            "unk_id": UNK,
            "bos_id": BOS,
            "eos_id": EOS,
            "normalization_rule_name": "identity",
            # a small corpus (the smoke preset) may not have vocab_size distinct pieces
            "hard_vocab_limit": False,
            # trained on the sentences given (the caller samples them deterministically)
            "input_sentence_size": 0,
            "shuffle_input_sentence": False,
            "minloglevel": 2,
            "num_threads": 1,  # one thread: the same model from the same text on any machine
        }


class SubwordModel:
    """A trained SentencePiece model: text to ids and back."""

    def __init__(self, model_proto: bytes, key: str) -> None:
        sentencepiece = _import_sentencepiece()
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self.model_proto = model_proto
        self.key = key

    @property
    def vocab_size(self) -> int:
        return int(self.processor.get_piece_size())

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of each text (no BOS/EOS)."""
        return self.processor.encode(list(texts))

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Raw text of each id sequence; PAD, BOS and EOS are dropped."""
        return self.processor.decode([[i for i in seq if i > EOS] for seq in ids])

    def pieces(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)


def cache_key(sentences: Sequence[str], options: SubwordOptions) -> str:
    """sha256 of the options and the training sentences (each followed by a newline)."""
    digest = hashlib.sha256()
    header = {"version": CACHE_VERSION, **options.trainer_arguments()}
    digest.update(json.dumps(header, sort_keys=True).encode("utf-8") + b"\n")
    for sentence in sentences:
        digest.update(sentence.encode("utf-8") + b"\n")
    return digest.hexdigest()


def load_or_train(
    sentences: Sequence[str], options: SubwordOptions, cache_dir: Path | None = None
) -> tuple[SubwordModel, dict[str, Any]]:
    """The model for ``sentences`` and ``options``: read from the cache, or trained and cached.

    Returns (model, info), info = {"key", "path", "cache": "hit" or "miss", "vocab_size"}. A cache
    file that SentencePiece cannot read is trained again and overwritten.
    """
    if not sentences:
        raise DataError("the subword model needs training text, got no sentences")
    sentencepiece = _import_sentencepiece()
    key = cache_key(sentences, options)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"spm-{key[:32]}.model"
    if path.is_file():
        try:
            model = SubwordModel(path.read_bytes(), key)
        except (OSError, RuntimeError):
            pass  # unreadable: train again below and overwrite it
        else:
            return model, _info(model, path, "hit")
    buffer = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=buffer, **options.trainer_arguments()
        )
    except RuntimeError as error:  # SentencePiece refuses the options for this text
        raise DataError(sentencepiece_problem(error, options)) from None
    proto = buffer.getvalue()
    atomic_write(path, lambda stream: stream.write(proto))
    model = SubwordModel(proto, key)
    return model, _info(model, path, "miss")


def sentencepiece_problem(error: RuntimeError, options: SubwordOptions) -> str:
    """SentencePiece's refusal as one line naming the setting to change."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", text)
    if needed:
        return (
            f"data.vocab_size={options.vocab_size} is too small for this text: SentencePiece "
            f"needs at least {needed.group(1)} pieces (its characters, 256 byte pieces and 4 "
            f"specials); use --set data.vocab_size={needed.group(1)} or more (and model.vocab_size "
            "at least as large)"
        )
    return (
        f"SentencePiece cannot train a subword model with data.vocab_size={options.vocab_size}: "
        f"{text}"
    )


def _info(model: SubwordModel, path: Path, cache: str) -> dict[str, Any]:
    return {"key": model.key, "path": str(path), "cache": cache, "vocab_size": model.vocab_size}
