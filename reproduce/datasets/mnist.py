"""MNIST loader: the IDX files shipped in data/mnist/, or the Hugging Face copy.

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): each IDX file starts with a
big-endian magic number ``0x0000TTDD`` (two zero bytes, type code ``TT`` = 0x08 for
unsigned bytes, ``DD`` dimensions: 2051 for images, 2049 for labels), then one
big-endian uint32 per dimension, then the data in row-major order. Provenance and
checksums of the shipped copy: data/README.md.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reproduce.datasets import _hub
from reproduce.datasets.integrity import DATA_ROOT, DataError, read_verified
from reproduce.datasets.integrity import expected_content_sha256 as _expected

__all__ = [
    "MNIST_HUB_ID",
    "MNIST_MEAN",
    "MNIST_STD",
    "SOURCES",
    "SPLITS",
    "load_mnist",
    "parse_idx",
]

#: Training-set pixel mean and std (pixels / 255), rounded as in the PyTorch MNIST
#: example; the exact figures of the shipped data are 0.1306604762738429 and
#: 0.30810780385646264 (data/README.md).
MNIST_MEAN: float = 0.1307
MNIST_STD: float = 0.3081

MNIST_HUB_ID = "ylecun/mnist"
SOURCES = ("local", "hub")
SPLITS = ("train", "test")

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_COUNTS = {"train": 60000, "test": 10000}
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_UBYTE = 0x08


def parse_idx(data: bytes, expected_magic: int, where: str | os.PathLike[str]) -> np.ndarray:
    """Parse an unsigned-byte IDX file into an array of its declared shape.

    Raises DataError (naming ``where``) on a wrong magic number or type code, or when
    the data length does not match the dimensions in the header.
    """
    if len(data) < 4:
        raise DataError(f"{where}: malformed IDX header (file is {len(data)} bytes long)")
    (magic,) = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dtype_code = (magic >> 8) & 0xFF
    if magic != expected_magic or magic >> 16 != 0 or dtype_code != _UBYTE:
        raise DataError(
            f"{where}: malformed IDX header: magic number {magic} (0x{magic:08x}), "
            f"expected {expected_magic} (0x{expected_magic:08x})"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{where}: malformed IDX header: truncated dimension list")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header_len != size:
        raise DataError(
            f"{where}: malformed IDX file: header declares dimensions {list(dims)} "
            f"({size} bytes of data) but the file holds {len(data) - header_len}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def _to_tensors(
    images: np.ndarray, labels: np.ndarray, where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes/ranges and convert to float32 [0, 1] images and int64 labels."""
    if images.dtype == object or images.ndim != 3 or images.shape[1:] != (28, 28):
        shape = images.shape if images.dtype != object else "ragged"
        raise DataError(f"{where}: expected images of shape (N, 28, 28), got {shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{where}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels outside 0..9 ({labels.min()}..{labels.max()})")
    if np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError(f"{where}: pixel values outside 0..255")
        x = torch.from_numpy(images.astype(np.float32)).div_(255.0)
    else:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise DataError(f"{where}: float pixel values outside [0, 1]")
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def _find_dir(data_dir: Path, names: tuple[str, ...]) -> Path:
    """``data_dir``, or its ``mnist/`` subfolder if the files are there instead."""
    for candidate in (data_dir, data_dir / "mnist"):
        if any((candidate / f"{n}.gz").is_file() or (candidate / n).is_file() for n in names):
            return candidate
    return data_dir


def _idx_path(directory: Path, name: str) -> Path:
    """``name.gz`` if present, else the uncompressed ``name`` (as torchvision keeps it)."""
    gz = directory / f"{name}.gz"
    plain = directory / name
    return plain if not gz.is_file() and plain.is_file() else gz


def _load_local(
    data_dir: Path | None, split: str, verify: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    directory = DATA_ROOT / "mnist" if data_dir is None else _find_dir(data_dir, _FILES[split])
    arrays = []
    for name, magic in zip(_FILES[split], (_IMAGES_MAGIC, _LABELS_MAGIC), strict=True):
        path = _idx_path(directory, name)
        # The canonical MNIST bytes have one hash, whatever folder or wrapper they come in.
        expected = _expected(f"mnist/{name}.gz") if verify else None
        arrays.append(parse_idx(read_verified(path, expected), magic, path))
    images, labels = arrays
    if images.shape[0] != _COUNTS[split]:
        raise DataError(
            f"{directory}: MNIST {split} split should hold {_COUNTS[split]} images, "
            f"found {images.shape[0]}"
        )
    return _to_tensors(images, labels, str(directory))


def _load_hub(data_dir: Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if data_dir is None:
        where = MNIST_HUB_ID
        obj: Any = _hub.load_from_hub(MNIST_HUB_ID)
    else:
        where = str(data_dir)
        if not _hub.is_saved_dataset_dir(data_dir) and _hub.is_saved_dataset_dir(
            data_dir / "mnist"
        ):
            data_dir = data_dir / "mnist"
        obj = _hub.load_from_dir(data_dir)
    ds = _hub.pick_split(obj, (split,), where)
    missing = {"image", "label"} - set(ds.column_names)
    if missing:
        raise DataError(
            f"{where}: expected columns 'image' and 'label' (as in {MNIST_HUB_ID}), "
            f"missing {sorted(missing)}; it has {ds.column_names}"
        )
    table = ds.with_format("numpy")[:]
    return _to_tensors(np.asarray(table["image"]), np.asarray(table["label"]), where)


def load_mnist(
    source: str = "local",
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "train",
    *,
    verify: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split as ``(images, labels)``.

    ``images`` is float32 of shape (N, 28, 28) with values in [0, 1] (pixels / 255);
    ``labels`` is int64 of shape (N,). N is 60,000 for "train" and 10,000 for "test".

    source="local": the IDX files (``*.gz`` or uncompressed) in ``data_dir`` (or its
    ``mnist/`` subfolder), default data/mnist/. Their decompressed content is checked
    against the canonical SHA-256 in data/checksums.json unless ``verify=False``.

    source="hub": ``datasets.load_dataset("ylecun/mnist")``; with ``data_dir``, a
    ``save_to_disk`` directory (a DatasetDict with this split, or a Dataset taken to be
    this split) or data files for ``load_dataset(data_dir)``. ``verify`` does not apply.

    Raises DataError if the data is missing, corrupted, malformed or unreachable.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown MNIST source {source!r}; valid choices: {list(SOURCES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; valid choices: {list(SPLITS)}")
    path = None if data_dir is None else Path(data_dir)
    if source == "local":
        return _load_local(path, split, verify)
    return _load_hub(path, split)
