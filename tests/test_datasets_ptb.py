"""PTB loader and batchify on the real data shipped in data/ptb/ (figures: data/README.md)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from reproduce.datasets import DATA_ROOT, DataError, PTBCorpus, batchify, load_ptb
from reproduce.datasets.ptb import EOS, build_vocab, tokenize_lines

PTB_DIR = DATA_ROOT / "ptb"
SPLIT_FILES = {s: f"ptb.{s}.txt.gz" for s in ("train", "valid", "test")}


@pytest.fixture(scope="module")
def corpus() -> PTBCorpus:
    return load_ptb()


@pytest.fixture(scope="module")
def lines() -> dict[str, list[str]]:
    """The raw lines of each split, read directly from the shipped files."""
    return {
        split: gzip.decompress((PTB_DIR / name).read_bytes()).decode().splitlines()
        for split, name in SPLIT_FILES.items()
    }


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    for name in SPLIT_FILES.values():
        shutil.copyfile(PTB_DIR / name, tmp_path / name)
    return tmp_path


def test_token_counts_and_vocabulary(corpus: PTBCorpus) -> None:
    assert corpus.train.numel() == 929_589
    assert corpus.valid.numel() == 73_760
    assert corpus.test.numel() == 82_430
    for ids in (corpus.train, corpus.valid, corpus.test):
        assert ids.dtype == torch.int64 and ids.dim() == 1
        assert ids.min().item() >= 0 and ids.max().item() < 10_000
    assert corpus.vocab_size == len(corpus.vocab) == 10_000
    assert len(set(corpus.vocab)) == 10_000
    assert EOS in corpus.word_to_id and "<unk>" in corpus.word_to_id
    assert all(corpus.word_to_id[w] == i for i, w in enumerate(corpus.vocab))
    # Every training type occurs in the training ids: the vocabulary is exactly the train types.
    assert torch.unique(corpus.train).numel() == 10_000


def test_vocab_is_sorted_by_frequency_then_alphabetically(corpus: PTBCorpus) -> None:
    counts = torch.bincount(corpus.train, minlength=corpus.vocab_size).tolist()
    keys = [(-counts[i], w) for i, w in enumerate(corpus.vocab)]
    assert keys == sorted(keys)
    assert corpus.vocab[:5] == ["the", "<unk>", EOS, "N", "of"]
    assert counts[corpus.word_to_id[EOS]] == 42_068  # one per training line


def test_ids_decode_back_to_the_text(corpus: PTBCorpus, lines) -> None:
    for split in ("train", "valid", "test"):
        ids = getattr(corpus, split)
        words = [corpus.vocab[i] for i in ids[:200].tolist()]
        assert words == tokenize_lines(lines[split])[:200]
        # Each line ends with <eos>; the number of <eos> equals the number of lines.
        assert (ids == corpus.word_to_id[EOS]).sum().item() == len(lines[split])
        assert ids[-1].item() == corpus.word_to_id[EOS]
    first = " ".join(corpus.vocab[i] for i in corpus.test[:7].tolist())
    assert first == "no it was n't black monday <eos>"


def test_loading_is_deterministic(corpus: PTBCorpus, user_dir: Path) -> None:
    again = load_ptb(data_dir=user_dir)
    assert again.vocab == corpus.vocab
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(again, split), getattr(corpus, split))


def test_uncompressed_files_in_a_ptb_subfolder(corpus: PTBCorpus, tmp_path: Path) -> None:
    (tmp_path / "ptb").mkdir()
    for name in SPLIT_FILES.values():
        data = gzip.decompress((PTB_DIR / name).read_bytes())
        (tmp_path / "ptb" / name.removesuffix(".gz")).write_bytes(data)
    again = load_ptb(data_dir=tmp_path)  # a data root holding ptb/, as in the repo
    assert again.vocab == corpus.vocab and torch.equal(again.valid, corpus.valid)


def test_build_vocab_and_tokenize_lines() -> None:
    assert tokenize_lines([" a b ", "b c"]) == ["a", "b", EOS, "b", "c", EOS]
    assert build_vocab(["b", "a", "c", "a", "b", "z"]) == ["a", "b", "c", "z"]


def test_corrupted_split_is_a_data_error_naming_the_file(user_dir: Path) -> None:
    target = user_dir / SPLIT_FILES["valid"]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x5A
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=str(target)):
        load_ptb(data_dir=user_dir)


def test_edited_text_fails_the_checksum(user_dir: Path) -> None:
    target = user_dir / SPLIT_FILES["test"]
    text = gzip.decompress(target.read_bytes()).replace(b" monday ", b" tuesday ", 1)
    target.write_bytes(gzip.compress(text, compresslevel=1))
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_ptb(data_dir=user_dir)
    assert str(target) in str(info.value)


def test_missing_split_is_a_data_error_naming_it(user_dir: Path) -> None:
    (user_dir / SPLIT_FILES["test"]).unlink()
    with pytest.raises(DataError, match=r"ptb\.test\.txt\.gz"):
        load_ptb(data_dir=user_dir)


def test_word_outside_the_vocabulary_is_a_data_error(user_dir: Path) -> None:
    target = user_dir / SPLIT_FILES["valid"]
    text = gzip.decompress(target.read_bytes()) + b" zyzzyva-not-in-ptb \n"
    target.write_bytes(gzip.compress(text, compresslevel=1))
    with pytest.raises(DataError, match="zyzzyva-not-in-ptb") as info:
        load_ptb(data_dir=user_dir, verify=False)
    assert "valid" in str(info.value)


def test_unknown_source_lists_the_valid_choices() -> None:
    with pytest.raises(ValueError, match=r"\['local', 'hub'\]"):
        load_ptb(source="torchtext")


# --- batchify ---------------------------------------------------------------------------


def test_batchify_shape_and_contiguous_rows(corpus: PTBCorpus) -> None:
    batch_size = 20
    batches = batchify(corpus.train, batch_size)
    n = 929_589 // batch_size
    assert batches.shape == (batch_size, n) and batches.dtype == torch.int64
    for row in range(batch_size):  # each row is an unbroken stretch of the stream
        assert torch.equal(batches[row], corpus.train[row * n : (row + 1) * n])
    assert torch.equal(batches.reshape(-1), corpus.train[: batch_size * n])  # remainder dropped


def test_batchify_small_cases() -> None:
    tokens = torch.arange(10)
    assert batchify(tokens, 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert batchify(tokens, 1).tolist() == [list(range(10))]
    with pytest.raises(ValueError, match="too few"):
        batchify(tokens, 11)
    with pytest.raises(ValueError):
        batchify(tokens, 0)
    with pytest.raises(ValueError, match="1-D"):
        batchify(tokens.view(2, 5), 2)


# --- source="hub", offline, on the real data ------------------------------------------


def _save_hf_copy(lines: dict[str, list[str]], path: Path) -> None:
    """A DatasetDict laid out like ptb_text_only: splits train/validation/test, 'sentence'."""
    import datasets

    splits = {"train": "train", "validation": "valid", "test": "test"}
    datasets.DatasetDict(
        {
            hf: datasets.Dataset.from_dict({"sentence": [ln.strip() for ln in lines[ours]]})
            for hf, ours in splits.items()
        }
    ).save_to_disk(str(path))


def test_hub_source_reads_a_saved_copy_identical_to_local(corpus, lines, tmp_path) -> None:
    _save_hf_copy(lines, tmp_path / "ptb")
    hub = load_ptb(source="hub", data_dir=tmp_path / "ptb")
    assert hub.vocab == corpus.vocab
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(hub, split), getattr(corpus, split))


def test_hub_source_rejects_a_single_dataset(lines, tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"sentence": lines["valid"][:5]}).save_to_disk(str(tmp_path))
    with pytest.raises(DataError, match="DatasetDict"):
        load_ptb(source="hub", data_dir=tmp_path)


def test_hub_offline_without_data_dir_is_a_clear_data_error(monkeypatch, tmp_path) -> None:
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    before = datasets.config.HF_HUB_OFFLINE
    with pytest.raises(DataError, match="hub is unreachable") as info:
        load_ptb(source="hub")
    assert "--data-dir" in str(info.value) and "ptb_text_only" in str(info.value)
    assert before == datasets.config.HF_HUB_OFFLINE  # the library's flag is restored
