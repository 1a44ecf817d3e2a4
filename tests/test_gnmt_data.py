"""GNMT data: bad input (misaligned files, empty lines, non-UTF-8, unknown characters), length
filtering counts, the subword cache, length bucketing and the resumable stream, and the WMT16 paths
(local files, and the `datasets` path offline on a save_to_disk copy)."""

from __future__ import annotations

import numpy as np
import pytest

from reproduce.datasets.integrity import DataError
from reproduce.datasets.wmt import (
    NEWSTEST2014_PAIRS,
    ParallelText,
    check_wmt16,
    load_newstest2014,
    load_wmt16,
    read_parallel_files,
)
from reproduce.gnmt import experiment as gnmt
from reproduce.gnmt.data import BucketedPairs, EncodedPairs, encode_pairs
from reproduce.gnmt.subword import BOS, EOS, UNK, SubwordOptions, load_or_train


@pytest.fixture(scope="module")
def newstest() -> ParallelText:
    return load_newstest2014()


@pytest.fixture(scope="module")
def subword(newstest, tmp_path_factory):
    sentences = newstest.source[:1000] + newstest.target[:1000]
    model, _ = load_or_train(
        sentences, SubwordOptions(vocab_size=1000), tmp_path_factory.mktemp("spm")
    )
    return model


def test_shipped_newstest2014_is_aligned_and_real(newstest):
    assert len(newstest) == NEWSTEST2014_PAIRS
    assert newstest.source[0] == "Gutach: Increased safety for pedestrians"
    assert newstest.target[0] == "Gutach: Noch mehr Sicherheit für Fußgänger"
    assert not any(line.endswith("\r") for line in newstest.source + newstest.target)


def test_misaligned_files_name_both_files_and_the_first_unpaired_line(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("eins\nzwei\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_parallel_files(tmp_path / "a.en", tmp_path / "a.de")
    message = str(error.value)
    assert "a.en has 3 lines" in message and "a.de has 2" in message
    assert "line 3 of" in message and str(tmp_path / "a.en") in message


def test_non_utf8_text_names_the_file_and_line(tmp_path):
    (tmp_path / "b.en").write_bytes(b"fine\nbroken \xff byte\n")
    (tmp_path / "b.de").write_text("gut\nkaputt\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"b\.en: not UTF-8 text .*line 2"):
        read_parallel_files(tmp_path / "b.en", tmp_path / "b.de")


def test_lines_split_on_newline_only(tmp_path):
    """A U+2028 inside a sentence does not split it (str.splitlines would); CRLF is stripped."""
    (tmp_path / "c.en").write_text("a\u2028b\r\nc\r\n", encoding="utf-8", newline="")
    (tmp_path / "c.de").write_text("x\ny\n", encoding="utf-8")
    text = read_parallel_files(tmp_path / "c.en", tmp_path / "c.de")
    assert text.source == ["a\u2028b", "c"]


def test_filtering_counts_empty_latin1_and_long_pairs(subword):
    text = ParallelText(
        ["A short one.", "", "Ωmega sign", "word " * 40, "Another short one.", "ok"],
        ["Ein kurzer.", "leer", "Omega", "Wort " * 40, "", "gut"],
        "test",
    )
    pairs, counts, kept = encode_pairs(text, subword, max_length=30, latin1_filter=True)
    assert counts.to_dict() == {"total": 6, "empty": 2, "not_latin1": 1, "too_long": 1, "kept": 2}
    assert kept.tolist() == [0, 5]
    assert len(pairs) == 2
    assert pairs.source(0)[0] == BOS and pairs.source(0)[-1] == EOS
    assert max(pairs.source_lengths.max(), pairs.target_lengths.max()) <= 30
    # the same pairs without the latin-1 filter keep the Greek letter (byte fallback, below)
    _, counts, _ = encode_pairs(text, subword, max_length=30, latin1_filter=False)
    assert counts.kept == 3 and counts.not_latin1 == 0


def test_unknown_characters_round_trip_through_byte_fallback(subword):
    text = "Schneemann ☃, 日本語 und Ωmega — ok"
    ids = subword.encode([text])[0]
    assert UNK not in ids
    assert subword.decode([ids]) == [text]
    assert any(piece.startswith("<0x") for piece in subword.pieces("☃"))


def test_subword_model_is_cached_by_a_hash_of_text_and_options(tmp_path):
    sentences = ["the cat sat on the mat", "der Hund lag auf der Matte"] * 20
    first, info = load_or_train(sentences, SubwordOptions(vocab_size=300), tmp_path)
    assert info["cache"] == "miss"
    again, info_again = load_or_train(sentences, SubwordOptions(vocab_size=300), tmp_path)
    assert info_again["cache"] == "hit" and info_again["path"] == info["path"]
    assert again.model_proto == first.model_proto
    _, info_other = load_or_train(sentences, SubwordOptions(vocab_size=310), tmp_path)
    assert info_other["cache"] == "miss" and info_other["key"] != info["key"]
    _, info_changed = load_or_train(
        [*sentences, "one more line"], SubwordOptions(vocab_size=300), tmp_path
    )
    assert info_changed["key"] != info["key"]
    # a corrupt cache file is trained again and replaced, not trusted
    from pathlib import Path

    Path(info["path"]).write_bytes(b"not a model")
    repaired, info_repaired = load_or_train(sentences, SubwordOptions(vocab_size=300), tmp_path)
    assert info_repaired["cache"] == "miss" and repaired.model_proto == first.model_proto
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _pairs(newstest, subword, count: int) -> EncodedPairs:
    pairs, _, _ = encode_pairs(newstest.slice(0, count), subword, max_length=50)
    return pairs


def test_bucketing_keeps_padding_small(newstest, subword):
    pairs = _pairs(newstest, subword, 2500)
    bucketed = BucketedPairs(pairs, pool=80).batch_statistics(64)
    unsorted = BucketedPairs(pairs, pool=1).batch_statistics(64)  # a window of one batch
    assert bucketed["padding_fraction"] < 0.12
    assert bucketed["padding_fraction"] < unsorted["padding_fraction"] / 3
    tokens = bucketed["source_tokens_per_batch"] + bucketed["target_tokens_per_batch"]
    mean_pair = float(pairs.source_lengths.mean() + pairs.target_lengths.mean())
    assert tokens == pytest.approx(64 * mean_pair, rel=0.02)


def test_stream_has_full_batches_visits_every_pair_once_an_epoch_and_resumes(newstest, subword):
    pairs = _pairs(newstest, subword, 3003)
    stream = BucketedPairs(
        EncodedPairs([pairs.source(i) for i in range(640)], [pairs.target(i) for i in range(640)]),
        pool=5,
    )
    batches = [next(iter_) for iter_ in [stream.stream(32, seed=3)] for _ in range(40)]
    assert {b.size for b in batches} == {32}
    lengths = [b.tensors[1] for b in batches[:20]]  # one epoch: 640 / 32 = 20 steps
    sources = [
        tuple(row[: int(n)].tolist())
        for b, ls in zip(batches[:20], lengths, strict=True)
        for row, n in zip(b.tensors[0], ls, strict=True)
    ]
    expected = sorted(tuple(stream.pairs.source(i)) for i in range(640))
    assert sorted(sources) == expected
    resumed = stream.stream(32, seed=3, start_step=13)
    for step in range(13, 40):
        batch = next(resumed)
        for mine, theirs in zip(batch.tensors, batches[step].tensors, strict=True):
            assert torch_equal(mine, theirs)
    other_seed = next(stream.stream(32, seed=4))
    assert not torch_equal(other_seed.tensors[0], batches[0].tensors[0])
    halves = [next(stream.stream(32, seed=3, shard=(rank, 2))) for rank in (0, 1)]
    assert torch_equal(
        np.concatenate([h.tensors[1].numpy() for h in halves]), batches[0].tensors[1]
    )


def torch_equal(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def _write_wmt16(folder, lines: int = 12, broken: bool = False) -> None:
    for split, count in (("train", lines), ("newstest2015", 3), ("newstest2016", 2)):
        (folder / f"{split}.en").write_text(
            "".join(f"{split} sentence {i}\n" for i in range(count))
        )
        extra = 1 if broken and split == "train" else 0
        (folder / f"{split}.de").write_text(
            "".join(f"{split} Satz {i}\n" for i in range(count + extra))
        )


def test_local_wmt16_layout_is_read_and_bad_layouts_say_what_is_missing(tmp_path):
    with pytest.raises(DataError, match=r"no --data-dir was given.*--preset smoke"):
        check_wmt16("local", None)
    with pytest.raises(DataError, match=r"Missing there: train\.en, train\.de"):
        check_wmt16("local", tmp_path)
    _write_wmt16(tmp_path)
    train, valid = load_wmt16("local", tmp_path)
    assert len(train) == 12 and len(valid) == 5
    assert valid.source[3] == "newstest2016 sentence 0"  # newstest2015 then newstest2016
    _write_wmt16(tmp_path, broken=True)
    with pytest.raises(DataError, match=r"train\.en has 12 lines but .*train\.de has 13"):
        check_wmt16("local", tmp_path)


def test_wmt16_through_datasets_offline_from_a_save_to_disk_copy(tmp_path):
    import datasets  # the test extra installs it

    def split(prefix: str, count: int):
        rows = [{"de": f"{prefix} Satz {i}", "en": f"{prefix} sentence {i}"} for i in range(count)]
        return datasets.Dataset.from_dict({"translation": rows})

    saved = tmp_path / "wmt16_saved"
    datasets.DatasetDict(
        {"train": split("train", 7), "validation": split("nt2015", 2), "test": split("nt2016", 3)}
    ).save_to_disk(str(saved))
    check_wmt16("hub", saved)
    train, valid = load_wmt16("hub", saved)
    assert train.source[6] == "train sentence 6" and train.target[6] == "train Satz 6"
    assert valid.source == ["nt2015 sentence 0", "nt2015 sentence 1"] + [
        f"nt2016 sentence {i}" for i in range(3)
    ]
    bad = tmp_path / "bad"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["x"]})}).save_to_disk(
        str(bad)
    )
    with pytest.raises(DataError, match="expected a 'translation' column"):
        load_wmt16("hub", bad)


def test_full_preset_data_path_on_a_tiny_wmt16_folder(tmp_path):
    """The full preset's build_data on a tiny local WMT16 folder: WMT16 trains, newstest2015+2016
    validate, newstest2014 (the folder's copy when present, else the shipped one) tests."""
    _write_wmt16(tmp_path, lines=40)
    config = {
        **gnmt.DATA_DEFAULTS,
        "vocab_size": 300,
        "subword_cache": str(tmp_path / "cache"),
    }
    gnmt.check_data("local", tmp_path, config)
    data = gnmt.build_data("local", tmp_path, config)
    assert data.info["train_filter"]["kept"] == 40 and len(data.valid.pairs) == 5
    assert len(data.test.pairs) == NEWSTEST2014_PAIRS and data.test.bleu
    assert data.train.steps_per_epoch(8) == 5.0
    assert load_newstest2014("local", tmp_path).origin == load_newstest2014().origin
