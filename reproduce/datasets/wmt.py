"""English-German parallel text: WMT16 (training, validation) and newstest2014 (test).

The GNMT reference (NVIDIA DeepLearningExamples, PyTorch/Translation/GNMT, README "Getting the
data" and scripts/wmt16_en_de.sh) trains on WMT16 En-De (Europarl v7 + Common Crawl + News
Commentary v11, concatenated into ``train.en`` / ``train.de``), validates on newstest2015 +
newstest2016, and tests on newstest2014. Three ways in:

- ``source="local"``: raw text, one sentence per line, the two sides aligned line by line, in the
  layout that the reference's ``scripts/wmt16_en_de.sh`` writes (see ``WMT16_LAYOUT``);
- ``source="hub"``: the Hugging Face ``wmt/wmt16`` dataset, config ``de-en`` (its validation and
  test splits are newstest2015 and newstest2016, which together are the reference's dev set), or a
  ``DatasetDict.save_to_disk`` copy of it passed as ``data_dir``;
- newstest2014 ships in data/wmt14_ende/ (3,003 pairs, gzipped; provenance and sha256 in
  data/README.md).

Bad input is an error that names the file and line: two sides whose line counts differ, text that
is not UTF-8. Empty lines are kept here (a test set must stay aligned); the experiment filters and
counts them for training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reproduce.datasets import _hub
from reproduce.datasets.integrity import DATA_ROOT, DataError, read_verified
from reproduce.datasets.integrity import expected_content_sha256 as _expected

__all__ = [
    "NEWSTEST2014_PAIRS",
    "SOURCES",
    "WMT14_HUB_ID",
    "WMT16_HUB_CONFIG",
    "WMT16_HUB_ID",
    "WMT16_LAYOUT",
    "WMT16_TRAIN_PAIRS",
    "ParallelText",
    "check_wmt16",
    "load_newstest2014",
    "load_wmt16",
    "read_parallel_files",
]

SOURCES = ("local", "hub")
SOURCE_LANGUAGE = "en"
TARGET_LANGUAGE = "de"
#: Hugging Face id and config of WMT16 (the dataset card's ``dataset_info`` lists the de-en splits:
#: train 4,548,885, validation 2,169 = newstest2015, test 2,999 = newstest2016;
#: https://huggingface.co/datasets/wmt/wmt16, README at commit c40135dc).
WMT16_HUB_ID = "wmt/wmt16"
WMT16_HUB_CONFIG = "de-en"
#: Unfiltered training pairs of ``wmt/wmt16`` de-en (its dataset card). The size after the length
#: filter is known only with the data; ``--plan`` without the data uses this figure.
WMT16_TRAIN_PAIRS = 4_548_885
#: ``wmt/wmt14`` de-en's test split is newstest2014 (3,003 pairs), the same text as data/wmt14_ende.
WMT14_HUB_ID = "wmt/wmt14"
NEWSTEST2014_PAIRS = 3003
#: Files of ``--data-dir`` for ``source="local"`` (what the reference's wmt16_en_de.sh leaves in
#: its output folder, before tokenization): training bitext, and the two dev sets.
WMT16_LAYOUT = {
    "train": ("train.en", "train.de"),
    "newstest2015": ("newstest2015.en", "newstest2015.de"),
    "newstest2016": ("newstest2016.en", "newstest2016.de"),
}
_NEWSTEST2014 = ("newstest2014.en", "newstest2014.de")
_SHIPPED = DATA_ROOT / "wmt14_ende"


@dataclass(frozen=True)
class ParallelText:
    """Aligned sentences: ``source[i]`` (English) translates to ``target[i]`` (German)."""

    source: list[str]
    target: list[str]
    origin: str  # where the text came from, for messages and records

    def __post_init__(self) -> None:
        if len(self.source) != len(self.target):
            raise DataError(
                f"{self.origin}: {len(self.source)} source and {len(self.target)} target "
                "sentences; the two sides must be aligned one to one"
            )

    def __len__(self) -> int:
        return len(self.source)

    def slice(self, start: int, stop: int | None) -> ParallelText:
        """Pairs ``start`` to ``stop`` (a Python slice of both sides)."""
        return ParallelText(
            self.source[start:stop], self.target[start:stop], f"{self.origin}[{start}:{stop}]"
        )

    def __add__(self, other: ParallelText) -> ParallelText:
        return ParallelText(
            self.source + other.source,
            self.target + other.target,
            f"{self.origin} + {other.origin}",
        )


def text_lines(data: bytes, path: Path) -> list[str]:
    """The lines of a UTF-8 file, split on ``\\n`` only (``str.splitlines`` would also split on
    characters such as U+2028 that occur inside sentences), each stripped of surrounding
    whitespace and of a Windows ``\\r``; a final newline does not start another line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte {error.start}, line {line}: {error.reason}); "
            "convert the file to UTF-8"
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def read_parallel_files(
    source_path: Path, target_path: Path, expected: Sequence[str | None] = (None, None)
) -> ParallelText:
    """Two aligned text files as a ParallelText; ``expected`` content sha256s are checked.

    A difference in line counts is a DataError naming both files and the first line that has no
    partner, so that a truncated download or a stray blank line is found at once.
    """
    sides = []
    for path, digest in zip((source_path, target_path), expected, strict=True):
        sides.append(text_lines(read_verified(path, digest), path))
    source, target = sides
    if len(source) != len(target):
        shorter, longer = sorted(((len(source), source_path), (len(target), target_path)))
        raise DataError(
            f"{source_path} has {len(source)} lines but {target_path} has {len(target)}: the two "
            f"sides must be aligned line by line; line {shorter[0] + 1} of {longer[1]} has no "
            f"partner in {shorter[1]} (a truncated file, or a line break inside a sentence?)"
        )
    return ParallelText(source, target, f"{source_path} / {target_path.name}")


def load_newstest2014(
    source: str = "local",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify: bool = True,
    required: bool = False,
) -> ParallelText:
    """newstest2014 En-De, 3,003 pairs: the shipped copy (data/wmt14_ende, sha256-checked), the
    ``newstest2014.{en,de}`` files of ``data_dir`` when present there, or with ``source="hub"``
    the test split of ``wmt/wmt14`` de-en (or of a save_to_disk copy in ``data_dir``).

    Never silently the shipped copy in place of the user's: a ``data_dir`` holding one of the two
    files but not the other, or a file with no sentence, is a DataError; so is a ``data_dir``
    holding neither when ``required`` (newstest2014 is then the corpus itself)."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid choices: {list(SOURCES)}")
    if source == "hub":
        obj = _hub_object(WMT14_HUB_ID, data_dir)
        where = str(data_dir) if data_dir is not None else WMT14_HUB_ID
        return _hub_split(obj, ("test",), where)
    folder = _find_folder(Path(data_dir), _NEWSTEST2014) if data_dir is not None else None
    if data_dir is not None and folder is None:
        _refuse_partial(Path(data_dir), _NEWSTEST2014, required)
    if folder is not None:
        text = read_parallel_files(folder / _NEWSTEST2014[0], folder / _NEWSTEST2014[1])
        if len(text) == 0:
            raise DataError(
                f"{folder / _NEWSTEST2014[0]} and {_NEWSTEST2014[1]} hold no sentence; restore "
                "them, or drop --data-dir to read the shipped newstest2014"
            )
        return text
    names = [f"{name}.gz" for name in _NEWSTEST2014]
    digests = tuple(_expected(f"wmt14_ende/{name}") if verify else None for name in names)
    return read_parallel_files(_SHIPPED / names[0], _SHIPPED / names[1], digests)


def _refuse_partial(data_dir: Path, names: Sequence[str], required: bool) -> None:
    """DataError when ``data_dir`` (or its ``wmt16_de_en/``) holds some of ``names`` but not all,
    or none of them when ``required``: what it lacks, instead of the shipped copy."""
    for folder in (data_dir, data_dir / "wmt16_de_en"):
        present = [name for name in names if (folder / name).is_file()]
        if present:
            missing = [name for name in names if name not in present]
            raise DataError(
                f"{folder} has {', '.join(present)} but not {', '.join(missing)}: the two sides "
                "of newstest2014 go together; add the missing file, or drop --data-dir to read "
                "the shipped copy"
            )
    if required:
        raise DataError(
            f"--data-dir {data_dir} has no {' or '.join(names)} (nor its wmt16_de_en/); put the "
            "two files there, or drop --data-dir to read the shipped newstest2014 (data/wmt14_ende)"
        )


def _find_folder(data_dir: Path, names: Sequence[str]) -> Path | None:
    """``data_dir`` or its ``wmt16_de_en/`` subfolder (the reference's default output folder),
    whichever holds every file of ``names``; None if neither does."""
    for folder in (data_dir, data_dir / "wmt16_de_en"):
        if all((folder / name).is_file() for name in names):
            return folder
    return None


def _local_help(data_dir: Path | None) -> str:
    files = ", ".join(name for pair in WMT16_LAYOUT.values() for name in pair)
    looked = (
        f"looked in {data_dir} and {data_dir / 'wmt16_de_en'}"
        if data_dir is not None
        else "no --data-dir was given (WMT16 is not shipped)"
    )
    return (
        f"WMT16 En-De training data not found: {looked}. Provide a folder with the raw, aligned, "
        f"one-sentence-per-line files {files} (what NVIDIA DeepLearningExamples' "
        "PyTorch/Translation/GNMT/scripts/wmt16_en_de.sh writes before tokenizing) and pass it "
        f"with --data-dir; or read the Hugging Face copy with --set data.source=hub "
        f"({WMT16_HUB_ID!r}, config {WMT16_HUB_CONFIG!r}; --data-dir then names a folder written "
        "by DatasetDict.save_to_disk, for machines without network). --preset smoke and --preset "
        "quick run on the shipped newstest2014 (data/wmt14_ende) without any download; "
        "--plan --preset full prints the recipes of the whole sweep, 1024 to 16384, without it"
    )


def check_wmt16(source: str, data_dir: Path | None) -> None:
    """Raise DataError with what to provide unless WMT16 can be read from ``source``/``data_dir``.

    Local files are checked for presence and aligned line counts (a count of newlines, not a full
    read); the hub path is opened (from the cache, a save_to_disk folder, or the network).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid choices: {list(SOURCES)}")
    if source == "hub":
        _hub_object(WMT16_HUB_ID, data_dir, WMT16_HUB_CONFIG)
        return
    names = [name for pair in WMT16_LAYOUT.values() for name in pair]
    folder = _find_folder(data_dir, names) if data_dir is not None else None
    if folder is None:
        if data_dir is not None:
            missing = [name for name in names if not (data_dir / name).is_file()]
            raise DataError(f"{_local_help(data_dir)}. Missing there: {', '.join(missing)}")
        raise DataError(_local_help(data_dir))
    for first, second in WMT16_LAYOUT.values():
        counts = [_count_lines(folder / name) for name in (first, second)]
        if counts[0] != counts[1]:
            raise DataError(
                f"{folder / first} has {counts[0]} lines but {folder / second} has {counts[1]}: "
                "the two sides must be aligned line by line; line "
                f"{min(counts) + 1} has no partner"
            )


def _count_lines(path: Path) -> int:
    """Lines of a text file (a last line without a newline counts), read in 1 MiB blocks."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def load_wmt16(
    source: str = "local", data_dir: str | os.PathLike[str] | None = None
) -> tuple[ParallelText, ParallelText]:
    """(training pairs, validation pairs = newstest2015 + newstest2016), unfiltered."""
    path = None if data_dir is None else Path(data_dir)
    check_wmt16(source, path)
    if source == "hub":
        obj = _hub_object(WMT16_HUB_ID, path, WMT16_HUB_CONFIG)
        where = str(path) if path is not None else f"{WMT16_HUB_ID} ({WMT16_HUB_CONFIG})"
        train = _hub_split(obj, ("train",), where)
        valid = _hub_split(obj, ("validation",), where) + _hub_split(obj, ("test",), where)
        return train, valid
    assert path is not None  # check_wmt16 refuses local without a folder
    folder = _find_folder(path, [name for pair in WMT16_LAYOUT.values() for name in pair])
    assert folder is not None
    read = {
        split: read_parallel_files(folder / first, folder / second)
        for split, (first, second) in WMT16_LAYOUT.items()
    }
    return read["train"], read["newstest2015"] + read["newstest2016"]


def _hub_object(repo_id: str, data_dir: Path | None, config: str | None = "de-en") -> Any:
    """The dataset from the hub (or its cache), or from a save_to_disk folder ``data_dir``."""
    if data_dir is None:
        return _hub.load_from_hub(repo_id, config)
    return _hub.load_from_dir(Path(data_dir))


def _hub_split(obj: Any, names: Sequence[str], where: str) -> ParallelText:
    """One split of a WMT dataset: rows ``{"translation": {"de": ..., "en": ...}}``."""
    split = _hub.pick_split(obj, names, where)
    if "translation" not in split.column_names:
        raise DataError(
            f"{where}: expected a 'translation' column of {{'de': ..., 'en': ...}} rows (as in "
            f"{WMT16_HUB_ID}), it has {split.column_names}"
        )
    source, target = [], []
    for index, row in enumerate(split["translation"]):
        try:
            source.append(str(row[SOURCE_LANGUAGE]).strip())
            target.append(str(row[TARGET_LANGUAGE]).strip())
        except (KeyError, TypeError):
            raise DataError(
                f"{where}: row {index} of split {names[0]!r} has no "
                f"{SOURCE_LANGUAGE!r}/{TARGET_LANGUAGE!r} pair: {row!r}"
            ) from None
    return ParallelText(source, target, f"{where}:{names[0]}")
