"""The shipped data files and the integrity checks on them (data/README.md)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from reproduce.datasets import integrity
from reproduce.datasets.integrity import (
    CHECKSUMS_FILE,
    DATA_ROOT,
    DataError,
    content_sha256,
    expected_content_sha256,
    read_verified,
    verify_file,
)

IMAGENET_SAMPLE = sorted(
    f"imagenet_sample/{name}"
    for name in (
        "n01440764_tench.JPEG",
        "n02102040_English_springer.JPEG",
        "n02979186_cassette_player.JPEG",
        "n03000684_chain_saw.JPEG",
        "n03028079_church.JPEG",
        "n03394916_French_horn.JPEG",
        "n03417042_garbage_truck.JPEG",
        "n03425413_gas_pump.JPEG",
        "n03445777_golf_ball.JPEG",
        "n03888257_parachute.JPEG",
        "wnids_1000.txt",
    )
)
SHIPPED = [
    *IMAGENET_SAMPLE,
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
    "mnist/train-images-idx3-ubyte.gz",
    "mnist/train-labels-idx1-ubyte.gz",
    "ptb/ptb.test.txt.gz",
    "ptb/ptb.train.txt.gz",
    "ptb/ptb.valid.txt.gz",
    "wmt14_ende/newstest2014.de.gz",
    "wmt14_ende/newstest2014.en.gz",
]


def test_data_root_is_the_repos_data_folder() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert repo / "data" == DATA_ROOT
    assert (DATA_ROOT / "README.md").is_file()


def test_checksums_json_lists_every_shipped_file_with_the_stored_hash() -> None:
    table = json.loads(CHECKSUMS_FILE.read_text())
    assert sorted(table) == SHIPPED
    on_disk = sorted(
        p.relative_to(DATA_ROOT).as_posix() for p in DATA_ROOT.glob("*/*") if p.is_file()
    )
    assert on_disk == SHIPPED
    readme = (DATA_ROOT / "README.md").read_text()
    for rel, entry in table.items():
        stored = hashlib.sha256((DATA_ROOT / rel).read_bytes()).hexdigest()
        assert stored == entry["sha256"], rel
        # Both hashes are documented in the README next to the file.
        assert entry["sha256"] in readme and entry["content_sha256"] in readme, rel


@pytest.mark.parametrize("rel", SHIPPED)
def test_shipped_files_have_the_canonical_content(rel: str) -> None:
    verify_file(DATA_ROOT / rel, expected_content_sha256(rel))


def test_canonical_mnist_hashes_are_the_well_known_ones() -> None:
    # The hashes that public loaders pin for the decompressed IDX files.
    assert expected_content_sha256("mnist/train-images-idx3-ubyte.gz").startswith("ba891046")
    assert expected_content_sha256("mnist/train-labels-idx1-ubyte.gz").startswith("65a50cbb")


def test_mismatch_names_file_hashes_and_remedy(tmp_path: Path) -> None:
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress((DATA_ROOT / rel).read_bytes()))
    content[100] = (content[100] + 1) % 10  # another valid label, different bytes
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes(content)))
    expected = expected_content_sha256(rel)
    with pytest.raises(DataError) as info:
        verify_file(bad, expected)
    message = str(info.value)
    assert str(bad) in message
    assert expected in message
    assert hashlib.sha256(bytes(content)).hexdigest() in message
    assert "--data-dir" in message


def test_mismatch_in_shipped_folder_suggests_git_checkout(monkeypatch, tmp_path: Path) -> None:
    fake_root = tmp_path / "data"
    (fake_root / "ptb").mkdir(parents=True)
    bad = fake_root / "ptb" / "ptb.valid.txt.gz"
    bad.write_bytes(gzip.compress(b" not the ptb text \n"))
    monkeypatch.setattr(integrity, "DATA_ROOT", fake_root)
    with pytest.raises(DataError, match=r"git checkout -- data/ptb/ptb\.valid\.txt\.gz"):
        verify_file(bad, expected_content_sha256("ptb/ptb.valid.txt.gz"))


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ptb.test.txt.gz"
    expected = expected_content_sha256("ptb/ptb.test.txt.gz")
    with pytest.raises(DataError) as info:
        verify_file(missing, expected)
    assert str(missing) in str(info.value)
    assert expected in str(info.value)
    with pytest.raises(DataError, match="not found"):
        read_verified(missing, None)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_gzip_is_a_data_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    raw = bytearray((DATA_ROOT / "ptb/ptb.valid.txt.gz").read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "ptb.valid.txt.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=str(bad)):
        verify_file(bad, expected_content_sha256("ptb/ptb.valid.txt.gz"))
    with pytest.raises(DataError, match=str(bad)):
        read_verified(bad, None)


def test_hash_is_cached_per_path_size_and_mtime(tmp_path: Path, monkeypatch) -> None:
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    copy = tmp_path / "labels.gz"
    shutil.copyfile(DATA_ROOT / rel, copy)
    calls = []
    real_open = integrity._open

    def counting_open(path):
        calls.append(path)
        return real_open(path)

    monkeypatch.setattr(integrity, "_open", counting_open)
    expected = expected_content_sha256(rel)
    verify_file(copy, expected)
    verify_file(copy, expected)
    assert content_sha256(copy) == expected
    assert len(calls) == 1  # hashed once

    # A new version of the file (different content and mtime) is hashed again and fails.
    copy.write_bytes(gzip.compress(b"\x00" * 8))
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="checksum mismatch"):
        verify_file(copy, expected)
    assert len(calls) == 2


def test_read_verified_returns_content_and_checks_it(tmp_path: Path) -> None:
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    data = read_verified(DATA_ROOT / rel, expected_content_sha256(rel))
    assert len(data) == 10008
    assert data[:4] == b"\x00\x00\x08\x01"
    plain = tmp_path / "t10k-labels-idx1-ubyte"  # uncompressed files are read as they are
    plain.write_bytes(data)
    assert read_verified(plain, expected_content_sha256(rel)) == data
