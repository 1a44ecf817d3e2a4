"""MNIST loader on the real data shipped in data/mnist/ (figures from data/README.md)."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from reproduce.datasets import DATA_ROOT, MNIST_MEAN, MNIST_STD, DataError, load_mnist

TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_MEAN = 0.1306604762738429
TRAIN_STD = 0.30810780385646264
MNIST_DIR = DATA_ROOT / "mnist"
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def train_split() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist(split="train")


@pytest.fixture(scope="module")
def test_split() -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist(split="test")


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A user data dir holding a copy of the (smaller) test split."""
    for name in TEST_FILES:
        shutil.copyfile(MNIST_DIR / name, tmp_path / name)
    return tmp_path


def _rewrite_gz(path: Path, edit) -> None:
    data = bytearray(gzip.decompress(path.read_bytes()))
    edit(data)
    path.write_bytes(gzip.compress(bytes(data), compresslevel=1))


def test_train_split_shapes_dtypes_and_range(train_split) -> None:
    images, labels = train_split
    assert images.shape == (60000, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (60000,) and labels.dtype == torch.int64
    assert images.min().item() == 0.0 and images.max().item() == 1.0
    assert torch.bincount(labels, minlength=10).tolist() == TRAIN_LABEL_COUNTS


def test_test_split_shapes_and_labels(test_split) -> None:
    images, labels = test_split
    assert images.shape == (10000, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (10000,) and labels.dtype == torch.int64
    assert images.min().item() >= 0.0 and images.max().item() <= 1.0
    assert torch.bincount(labels, minlength=10).tolist() == TEST_LABEL_COUNTS


def test_pixels_are_bytes_over_255_with_the_documented_statistics(train_split) -> None:
    images, _ = train_split
    some = images[:2000] * 255  # every value is a byte value / 255
    assert torch.allclose(some, some.round(), atol=1e-4)
    pixels = images.double()
    assert pixels.mean().item() == pytest.approx(TRAIN_MEAN, abs=1e-6)
    assert pixels.std(unbiased=False).item() == pytest.approx(TRAIN_STD, abs=1e-6)
    assert pytest.approx(TRAIN_MEAN, abs=5e-5) == MNIST_MEAN
    assert pytest.approx(TRAIN_STD, abs=5e-5) == MNIST_STD


def test_user_data_dir_with_canonical_files_loads_the_same(test_split, user_dir: Path) -> None:
    images, labels = load_mnist(data_dir=user_dir, split="test")
    assert torch.equal(images, test_split[0]) and torch.equal(labels, test_split[1])


def test_uncompressed_files_and_mnist_subfolder_are_found(test_split, tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    for name in TEST_FILES:  # torchvision keeps the raw IDX files, uncompressed
        (tmp_path / "mnist" / name.removesuffix(".gz")).write_bytes(
            gzip.decompress((MNIST_DIR / name).read_bytes())
        )
    images, labels = load_mnist(data_dir=tmp_path, split="test")
    assert torch.equal(images, test_split[0]) and torch.equal(labels, test_split[1])


def test_flipped_byte_in_gzip_is_a_data_error_naming_the_file(user_dir: Path) -> None:
    target = user_dir / TEST_FILES[0]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=str(target)):
        load_mnist(data_dir=user_dir, split="test")


def test_truncated_file_is_a_data_error_naming_the_file(user_dir: Path) -> None:
    target = user_dir / TEST_FILES[1]
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(DataError, match=str(target)):
        load_mnist(data_dir=user_dir, split="test")


def test_changed_pixel_fails_the_checksum_unless_verify_is_off(test_split, user_dir: Path) -> None:
    target = user_dir / TEST_FILES[0]
    _rewrite_gz(target, lambda d: d.__setitem__(16, 255 - d[16]))
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_mnist(data_dir=user_dir, split="test")
    assert str(target) in str(info.value)
    images, _ = load_mnist(data_dir=user_dir, split="test", verify=False)
    assert images[0, 0, 0].item() == 1.0 - test_split[0][0, 0, 0].item()
    assert torch.equal(images[1:], test_split[0][1:])


def test_missing_file_is_a_data_error_naming_it(user_dir: Path) -> None:
    (user_dir / TEST_FILES[1]).unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte") as info:
        load_mnist(data_dir=user_dir, split="test")
    assert "not found" in str(info.value)


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, 2052, "magic number 2052"),  # not an image file
        (4, 9999, "dimensions"),  # count disagrees with the data length
        (8, 27, "dimensions"),
    ],
)
def test_malformed_header_is_a_data_error(user_dir, offset, value, message) -> None:
    target = user_dir / TEST_FILES[0]
    _rewrite_gz(
        target, lambda d: d.__setitem__(slice(offset, offset + 4), struct.pack(">I", value))
    )
    with pytest.raises(DataError, match=message) as info:
        load_mnist(data_dir=user_dir, split="test", verify=False)
    assert str(target) in str(info.value)
    with pytest.raises(DataError):  # and with verification on, the checksum catches it first
        load_mnist(data_dir=user_dir, split="test")


def test_labels_file_in_place_of_images_is_rejected(user_dir: Path) -> None:
    shutil.copyfile(user_dir / TEST_FILES[1], user_dir / TEST_FILES[0])
    with pytest.raises(DataError, match="magic number 2049"):
        load_mnist(data_dir=user_dir, split="test", verify=False)


def test_bad_arguments_list_the_valid_choices() -> None:
    with pytest.raises(ValueError, match=r"\['local', 'hub'\]"):
        load_mnist(source="torchvision")
    with pytest.raises(ValueError, match=r"\['train', 'test'\]"):
        load_mnist(split="valid")


# --- source="hub", offline, on the real data -------------------------------------------


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch) -> Path:
    """Keep the datasets/hub caches inside tmp_path (they are read at import time)."""
    import datasets.config
    import huggingface_hub.constants

    cache = tmp_path / "hf_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache / "hub"))
    return cache


def _as_hf_dataset(images: torch.Tensor, labels: torch.Tensor):
    """A datasets.Dataset laid out like ylecun/mnist: PIL 'image' and ClassLabel 'label'."""
    import datasets
    from PIL import Image

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[str(i) for i in range(10)]),
        }
    )
    pixels = (images * 255).round().to(torch.uint8).numpy()
    return datasets.Dataset.from_dict(
        {"image": [Image.fromarray(p) for p in pixels], "label": labels.tolist()},
        features=features,
    )


def test_hub_source_reads_a_saved_dataset_dict(train_split, test_split, tmp_path: Path) -> None:
    import datasets

    saved = tmp_path / "mnist_saved"
    train_x, train_y = train_split[0][:600], train_split[1][:600]
    test_x, test_y = test_split[0][-400:], test_split[1][-400:]
    datasets.DatasetDict(
        {"train": _as_hf_dataset(train_x, train_y), "test": _as_hf_dataset(test_x, test_y)}
    ).save_to_disk(str(saved))
    images, labels = load_mnist(source="hub", data_dir=saved, split="train")
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert torch.equal(images, train_x) and torch.equal(labels, train_y)
    images, labels = load_mnist(source="hub", data_dir=saved, split="test")
    assert torch.equal(images, test_x) and torch.equal(labels, test_y)


def test_hub_source_reads_a_saved_single_dataset_and_a_data_root(
    test_split, tmp_path: Path
) -> None:
    _as_hf_dataset(test_split[0][:300], test_split[1][:300]).save_to_disk(str(tmp_path / "mnist"))
    for data_dir in (tmp_path / "mnist", tmp_path):  # the folder, or a root holding mnist/
        images, labels = load_mnist(source="hub", data_dir=data_dir, split="test")
        assert torch.equal(images, test_split[0][:300]) and torch.equal(labels, test_split[1][:300])


def test_hub_source_reads_a_hub_style_parquet_folder(test_split, tmp_path: Path, hf_cache) -> None:
    repo = tmp_path / "ylecun_mnist"  # the layout of a clone of the Hub repository
    _as_hf_dataset(test_split[0][:400], test_split[1][:400]).to_parquet(
        str(repo / "mnist" / "test-00000-of-00001.parquet")
    )
    _as_hf_dataset(test_split[0][400:500], test_split[1][400:500]).to_parquet(
        str(repo / "mnist" / "train-00000-of-00001.parquet")
    )
    images, labels = load_mnist(source="hub", data_dir=repo, split="test")
    assert torch.equal(images, test_split[0][:400]) and torch.equal(labels, test_split[1][:400])


def test_hub_source_rejects_a_dataset_without_the_mnist_columns(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"pixels": [[0] * 4], "y": [1]}).save_to_disk(str(tmp_path))
    with pytest.raises(DataError, match="'image' and 'label'"):
        load_mnist(source="hub", data_dir=tmp_path, split="test")


def test_hub_source_missing_split_is_named(test_split, tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict(
        {"test": _as_hf_dataset(test_split[0][:10], test_split[1][:10])}
    ).save_to_disk(str(tmp_path))
    with pytest.raises(DataError, match="no split 'train'"):
        load_mnist(source="hub", data_dir=tmp_path, split="train")


def test_hub_offline_without_data_dir_is_a_clear_data_error(monkeypatch, hf_cache) -> None:
    # Set after `datasets` was imported: the loader must still honour it, and fail fast.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match="hub is unreachable") as info:
        load_mnist(source="hub", split="test")
    assert "--data-dir" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_hub_offline_in_a_fresh_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        from reproduce.datasets import DataError, load_mnist
        try:
            load_mnist(source="hub", split="test")
        except DataError as exc:
            print("DataError:", exc)
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "DataError:" in done.stdout and "--data-dir" in done.stdout
