"""Rule-based sequence-to-sequence tasks: copy and reverse of random token sequences.

No corpus-specific tuning can pass them: the output is a function of the source alone, every
sequence is drawn at random, and the held-back pairs are sequences the model never saw. A model
that ignores its source cannot score above chance on them, and one that cannot align source and
target positions cannot reverse. They are the standard probes of attention in sequence models
(copy and reverse: Graves et al. 2014, "Neural Turing Machines", Section 4.1; Vinyals et al. 2015,
"Pointer Networks"), used here as a small translation-like task with the real text pipeline
(subwords, decoding, sacreBLEU).

Tokens are lowercase syllables (``ba``, ``be``, ... ``zu``: 20 consonants x 5 vowels, two
syllables for a vocabulary above 100), separated by spaces: letters only, because SentencePiece
never merges a letter with a digit (``split_by_number``), so a BPE vocabulary of a few hundred
pieces holds every word as one piece; sacreBLEU's tokenizers see one word per token, and BLEU
measures the share of tokens in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .wmt import ParallelText

#: The tasks: the target as a function of the source words.
TASKS = ("copy", "reverse")
CONSONANTS = "bcdfghjklmnpqrstvwxz"
VOWELS = "aeiou"
SYLLABLES = [c + v for c in CONSONANTS for v in VOWELS]
MAX_VOCAB = len(SYLLABLES) * (len(SYLLABLES) + 1)


def word(index: int) -> str:
    """The ``index``-th word: one syllable below 100, two above."""
    if index < len(SYLLABLES):
        return SYLLABLES[index]
    first, second = divmod(index, len(SYLLABLES))
    return SYLLABLES[first - 1] + SYLLABLES[second]


@dataclass(frozen=True)
class SequenceTask:
    """Random sequences of ``min_length`` to ``max_length`` words (uniform) from ``vocab``
    words (uniform)."""

    task: str = "reverse"
    vocab: int = 100
    min_length: int = 5
    max_length: int = 20

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r}: valid choices: {', '.join(TASKS)}")
        if not 2 <= self.vocab <= MAX_VOCAB:
            raise ValueError(f"vocab {self.vocab}: needs 2 to {MAX_VOCAB} words")
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError(
                f"lengths {self.min_length} to {self.max_length}: need 1 <= min <= max"
            )

    def target_words(self, words: list[str]) -> list[str]:
        return list(words) if self.task == "copy" else list(reversed(words))

    def sample(self, count: int, seed: int, exclude: frozenset[str] = frozenset()) -> ParallelText:
        """``count`` distinct pairs from ``numpy.random.default_rng(seed)``, none of whose sources
        is in ``exclude`` (the sources of another split, so held-back pairs are never trained)."""
        rng = np.random.default_rng(seed)
        sources: list[str] = []
        seen = set(exclude)
        while len(sources) < count:
            length = int(rng.integers(self.min_length, self.max_length + 1))
            sentence = " ".join(word(int(i)) for i in rng.integers(0, self.vocab, size=length))
            if sentence not in seen:
                seen.add(sentence)
                sources.append(sentence)
        targets = [" ".join(self.target_words(s.split())) for s in sources]
        origin = (
            f"{self.task} task ({self.vocab} words, lengths {self.min_length}-"
            f"{self.max_length}, seed {seed})"
        )
        return ParallelText(sources, targets, origin)

    def splits(
        self, train: int, held_out: int, seed: int = 0
    ) -> tuple[ParallelText, ParallelText, ParallelText]:
        """Training, validation and test pairs, pairwise disjoint in their sources. The data seed
        is fixed apart from the run's seed: every run of a sweep sees the same data."""
        train_text = self.sample(train, seed)
        valid = self.sample(held_out, seed + 1, frozenset(train_text.source))
        test = self.sample(held_out, seed + 2, frozenset(train_text.source + valid.source))
        return train_text, valid, test
