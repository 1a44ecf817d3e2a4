"""ImageNet-1k (ILSVRC-2012) for the CNN experiment: where the images come from, how they are
decoded and augmented, and the clear errors when they are not there.

Three sources, one pipeline (decode, then torchvision's transforms, uint8 out):

- a folder in the standard layout that torchvision's ``ImageFolder`` and most training scripts
  read (made from the official archives by ``python -m reproduce.datasets.imagenet prepare``)::

      DIR/train/<wnid>/*.JPEG    1,281,167 images in the 1000 class folders
      DIR/val/<wnid>/*.JPEG      50,000 images in the same 1000 folders

- the Hugging Face copy ``ILSVRC/imagenet-1k`` through ``datasets`` (gated: the token is the
  user's), or a ``save_to_disk`` copy of it;
- the 10 images shipped in ``data/imagenet_sample`` (provenance: data/README.md), for the smoke
  preset and the tests.

A class index is the position of the wnid in the sorted list of the 1000 ILSVRC-2012 wnids
(``data/imagenet_sample/wnids_1000.txt``): the order of ``ImageFolder`` over the 1000 folders and
of the hub copy's labels (0 = n01440764, tench).
"""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from reproduce.datasets.imagenet_classes import (  # noqa: F401 (ImageNet's facts, named here too)
    CLASSES,
    TRAIN_IMAGES,
    VAL_IMAGES,
    WNID_PATTERN,
    WNIDS_FILE,
    wnids,
)
from reproduce.datasets.integrity import (
    DATA_ROOT,
    DataError,
    expected_content_sha256,
    read_verified,
)

HUB_REPO = "ILSVRC/imagenet-1k"
SAMPLE_DIR = DATA_ROOT / "imagenet_sample"
#: Where the experiment looks for the standard layout without --data-dir (a symlink will do).
DEFAULT_DIR = DATA_ROOT / "imagenet"
#: Per-channel mean and std of ImageNet's training images (RGB, pixels / 255), the values of
#: torchvision's pretrained-weights transforms and of pytorch/examples imagenet.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: Evaluation resizes the shorter side to 256 and takes the centre 224 (He et al. 2016, and
#: torchvision's ResNet-50 V1 evaluation): the ratio 256 / 224 is kept at other image sizes.
EVAL_RESIZE_RATIO = 256 / 224

PREPARE_COMMAND = (
    "python -m reproduce.datasets.imagenet prepare --train-tar ILSVRC2012_img_train.tar "
    "--val-tar ILSVRC2012_img_val.tar --val-labels ILSVRC2012_devkit_t12.tar.gz --out DIR"
)
LAYOUT = (
    "DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG, with one folder for each of the 1000 "
    "ILSVRC-2012 classes (n01440764 ... n15075141) in both"
)


def what_to_do(looked_in: Path | None) -> str:
    """The remedies every 'no ImageNet here' message lists."""
    where = ""
    if looked_in is not None:
        default = " (the default)" if looked_in == DEFAULT_DIR else ""
        where = f"Looked in {looked_in}{default}. "
    return (
        f"{where}Needed layout: {LAYOUT}. Make it from the official archives with `"
        f"{PREPARE_COMMAND}` and pass --data-dir DIR (or link DIR to {DEFAULT_DIR}); or read the "
        f"Hugging Face copy with --set data.source=hub (the {HUB_REPO} dataset is gated: accept "
        "its terms, then log in with `hf auth login` or set HF_TOKEN). `--preset smoke` runs end "
        f"to end on the 10 images shipped in {SAMPLE_DIR}; `--plan --preset full` prints the "
        "recipes of the whole sweep, 512 to 32K, without the data."
    )


def class_subset(classes: int) -> tuple[int, ...]:
    """``classes`` class indices spread evenly over the 1000 (every 10th for 100): a subset for
    runs that a single device finishes in hours. Labels keep their ImageNet index."""
    if not 1 <= classes <= CLASSES:
        raise DataError(f"data.classes={classes}: must be between 1 and {CLASSES}")
    return tuple(index * CLASSES // classes for index in range(classes))


_TORCHVISION_DECODE_DEPRECATION = "The image decoding and encoding capabilities of TorchVision"


class ImageDecodeError(DataError):
    """An image file that neither torchvision nor Pillow can decode."""


def decode_image(data: bytes) -> torch.Tensor:
    """RGB uint8 tensor (3, H, W) from encoded bytes.

    torchvision.io first (libjpeg-turbo; it also reads ImageNet's grayscale and CMYK JPEGs and
    PNGs, and was about 1.5x faster than Pillow with the training transforms on the shipped
    sample), then Pillow for anything else (ImageNet's train set has a PNG and a few CMYK files
    named .JPEG). torchvision 0.29 deprecates its decoders in favour of TorchCodec; with the
    exact pin they work, the warning is silenced here, and Pillow takes over when they go.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _TORCHVISION_DECODE_DEPRECATION, DeprecationWarning)
            from torchvision.io import ImageReadMode
            from torchvision.io import decode_image as torchvision_decode

            encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return torchvision_decode(encoded, mode=ImageReadMode.RGB)
    except (ImportError, RuntimeError, ValueError) as first:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as second:
            raise ImageDecodeError(f"torchvision: {first}; Pillow: {second}") from second
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def eval_resize(image_size: int) -> int:
    return round(image_size * EVAL_RESIZE_RATIO)


def train_transform(image_size: int) -> Any:
    """Random-resized crop (scale 0.08-1, aspect 3/4-4/3, bilinear, antialiased) and a random
    horizontal flip: the standard ResNet training augmentation (Szegedy et al. 2015; torchvision
    references and NUS-HPC-AI-Lab/LARS-ImageNet-PyTorch)."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()])


def eval_transform(image_size: int) -> Any:
    """Resize the shorter side to 256 and take the centre 224 (scaled for other sizes)."""
    from torchvision.transforms import v2

    return v2.Compose(
        [v2.Resize(eval_resize(image_size), antialias=True), v2.CenterCrop(image_size)]
    )


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 3, H, W) to float, scaled to [0, 1] and normalized per channel with
    ImageNet's MEAN and STD (torchvision's ``normalize``). Done on the training device, so that the
    loader moves a quarter of the bytes and the device does the arithmetic."""
    from torchvision.transforms.v2 import functional

    return functional.normalize(images.float().div_(255.0), MEAN, STD)


class ImageSource(Protocol):
    """Encoded images and their labels, by index."""

    def __len__(self) -> int: ...

    def read(self, index: int) -> bytes: ...

    def label(self, index: int) -> int: ...

    def describe(self, index: int) -> str: ...


class ImageFiles:
    """Images on disk as (path, label) pairs. Paths and labels are kept in numpy arrays rather
    than Python lists, so that forked loader workers do not copy them page by page as reference
    counts change (the well-known DataLoader memory growth with 1.28M-entry lists)."""

    def __init__(self, samples: Sequence[tuple[str, int]]) -> None:
        self.paths = np.array([str(path).encode() for path, _ in samples], dtype=np.bytes_)
        self.labels = np.array([label for _, label in samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, index: int) -> bytes:
        return Path(self.describe(index)).read_bytes()

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def describe(self, index: int) -> str:
        return self.paths[index].decode()


class HubImages:
    """Rows of a ``datasets`` split (columns ``image`` and ``label``), the images left encoded
    (``Image(decode=False)``) so that they go through the same decoder as files."""

    def __init__(self, table: Any, rows: np.ndarray, labels: np.ndarray, where: str) -> None:
        self.table, self.rows, self.labels, self.where = table, rows, labels, where

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, index: int) -> bytes:
        image = self.table[int(self.rows[index])]["image"]
        if image.get("bytes"):
            return image["bytes"]
        return Path(image["path"]).read_bytes()

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def describe(self, index: int) -> str:
        return f"row {int(self.rows[index])} of {self.where}"


class TransformedImages(torch.utils.data.Dataset):
    """Decoded, transformed uint8 images (3, size, size) and their labels.

    A key is an index, or ``(sample_seed, index)``: the transform then draws its randomness from
    torch's generator seeded with ``sample_seed`` (inside ``fork_rng``, so the caller's generator
    is untouched), so an augmented image depends on the seed alone, not on which loader worker
    made it or how many there are. An image that cannot be read or decoded comes back as zeros
    with label ``-1 - index``: the consumer raises ``failure(index)``, which names the file, in
    the main process (an exception raised inside a worker would arrive wrapped in a traceback).
    """

    def __init__(self, source: ImageSource, transform: Any, image_size: int) -> None:
        self.source, self.transform, self.image_size = source, transform, image_size

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        sample_seed, index = key if isinstance(key, tuple) else (None, key)
        try:
            image = decode_image(self.source.read(index))
        except (OSError, DataError):
            blank = torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8)
            return blank, -1 - index
        if sample_seed is None:
            return self.transform(image), self.source.label(index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.transform(image), self.source.label(index)

    def failure(self, index: int) -> DataError:
        """The error for an image that came back blank: read and decode it again for the cause."""
        where = self.source.describe(index)
        try:
            decode_image(self.source.read(index))
            cause = "it failed in a loader worker but decodes here; check the disk and rerun"
        except (OSError, DataError) as error:
            cause = str(error) or type(error).__name__
        return DataError(
            f"cannot read image {where}: {cause}. Replace the file with a good copy (from the "
            "official archive, with the preparation command) or delete it, then rerun the same "
            "command (--resume continues from the last checkpoint)"
        )


def check_labels(labels: torch.Tensor, dataset: TransformedImages) -> None:
    """Raise the DataError naming the first image of a loaded batch that could not be read."""
    bad = labels < 0
    if bool(bad.any()):
        raise dataset.failure(-1 - int(labels[bad][0]))


# ---------------------------------------------------------------------------------------------
# Where the images come from


def check_layout(root: Path) -> None:
    """DataError naming the folder unless ``root`` has train/ and val/ with the 1000 class
    folders each (a listing of folders only; the images are listed when the data is built)."""
    known = set(wnids())
    if not root.is_dir():
        raise DataError(f"ImageNet-1k not found: there is no folder {root}. {what_to_do(root)}")
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"ImageNet-1k not found: {folder} is not a folder. {what_to_do(root)}")
        found = sorted(path.name for path in folder.iterdir() if path.is_dir())
        if not found and any(path.is_file() for path in folder.iterdir()):
            raise DataError(
                f"{folder} holds image files, not one folder per class: the validation archive "
                "unpacks flat, and its labels sort the images into class folders (the "
                f"preparation command does this, given --val-labels). {what_to_do(root)}"
            )
        if len(found) != CLASSES:
            raise DataError(
                f"{folder} has {len(found)} class folders; ImageNet-1k has {CLASSES}. "
                f"{what_to_do(root)}"
            )
        unknown = sorted(set(found) - known)
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise DataError(
                f"{folder}: {len(unknown)} folder(s) are not ILSVRC-2012 wnids ({shown}). "
                f"{what_to_do(root)}"
            )


def folder_images(root: Path, split: str, class_indices: Sequence[int]) -> ImageFiles:
    """The images of ``root/split`` in the chosen classes, listed by torchvision's ImageFolder
    (its extensions and file scan) with the class numbering of the 1000-wnid list."""
    from torchvision.datasets import ImageFolder

    names = wnids()
    chosen = [names[index] for index in class_indices]

    class WnidFolder(ImageFolder):
        def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
            return chosen, {wnid: index for wnid, index in zip(chosen, class_indices, strict=True)}

    folder = root / split
    try:
        listing = WnidFolder(str(folder))
    except FileNotFoundError as error:
        raise DataError(f"{folder}: {error}. {what_to_do(root)}") from None
    return ImageFiles(listing.samples)


def sample_images() -> ImageFiles:
    """The 10 shipped images (each checked against data/checksums.json), labelled by the wnid
    that starts their file name."""
    index = {wnid: position for position, wnid in enumerate(wnids())}
    samples = []
    for path in sorted(SAMPLE_DIR.glob("*.JPEG")):
        read_verified(path, expected_content_sha256(f"imagenet_sample/{path.name}"))
        samples.append((str(path), index[path.name.split("_", 1)[0]]))
    if len(samples) != 10:
        raise DataError(
            f"{SAMPLE_DIR}: expected the 10 shipped images, found {len(samples)}; restore them "
            "with `git checkout -- data/imagenet_sample`"
        )
    return ImageFiles(samples)


HUB_SPLITS = {"train": ("train",), "val": ("validation", "val")}


def hub_images(split: str, data_dir: Path | None, class_indices: Sequence[int]) -> HubImages:
    """The ``split`` of ILSVRC/imagenet-1k through ``datasets``: from the hub (the first call
    downloads about 150 GB into the Hugging Face cache) or from ``data_dir`` (a save_to_disk copy
    or the dataset's files)."""
    from reproduce.datasets import _hub

    datasets = _hub.import_datasets()
    if data_dir is not None:
        loaded, where = _hub.load_from_dir(data_dir), str(data_dir)
    else:
        try:
            loaded = _hub.load_from_hub(HUB_REPO)
        except DataError as error:
            raise DataError(
                f"{error}. {HUB_REPO} is gated: accept its terms on the hub, then log in with "
                "`hf auth login` (`huggingface-cli login` in older releases) or set HF_TOKEN; the "
                "token is yours, the project never stores "
                f"one. {what_to_do(None)}"
            ) from None
        where = HUB_REPO
    table = _hub.pick_split(loaded, HUB_SPLITS[split], where)
    missing = {"image", "label"} - set(table.column_names)
    if missing:
        raise DataError(f"{where}: the {split} split lacks the column(s) {sorted(missing)}")
    label_feature = table.features["label"]
    if getattr(label_feature, "num_classes", CLASSES) != CLASSES:
        raise DataError(
            f"{where}: the label has {label_feature.num_classes} classes; ImageNet-1k has {CLASSES}"
        )
    table = table.cast_column("image", datasets.Image(decode=False))
    labels = np.asarray(table["label"], dtype=np.int64)
    rows = np.flatnonzero(np.isin(labels, np.asarray(class_indices)))
    return HubImages(table, rows, labels[rows], f"{where} ({split})")


def check_data(source: str, data_dir: Path | None, sample: bool) -> None:
    """The experiment's check before anything is written: DataError with what to provide."""
    if sample:
        sample_images()
    elif source == "local":
        check_layout(data_dir if data_dir is not None else DEFAULT_DIR)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reproduce.datasets.imagenet prepare ...`` (see imagenet_prepare)."""
    from reproduce.datasets import imagenet_prepare

    return imagenet_prepare.main(argv)


if __name__ == "__main__":
    sys.exit(main())
