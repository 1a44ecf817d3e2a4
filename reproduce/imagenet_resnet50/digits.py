"""MNIST digits as a small real image set for the ResNet-50 proxy (``--preset proxy``).

The proxy trains the experiment's own ResNet-50, loss and LARS recipe on images the repository
ships (data/mnist), shaped like the ImageNet batches the model expects: uint8 (B, 3, S, S), the
gray channel copied to all three, each 28 x 28 digit zero-padded to S x S (S = 32 as LeNet-5's
input, LeCun et al. 1998: no resampling, every pixel kept). The loss then normalizes them with
ImageNet's mean and std, exactly as it does real ImageNet batches.

Splits, disjoint by construction: training = the first ``train_examples`` images of MNIST's
training file; validation = images 55,000 onwards of that file (held out as in mnist_lstm and
TensorFlow's classic input_data); test = the first ``test_examples`` images of MNIST's test
file, evaluated once, at the end. No augmentation (a flipped digit is another digit). Nothing
here is random: the training order is the harness's seeded shuffle (``ShuffledExamples``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reproduce.datasets.integrity import DataError, positive_count
from reproduce.datasets.mnist import load_mnist
from reproduce.harness.run.experiment import DataBundle, ShuffledExamples

#: MNIST's images are 28 x 28 pixels.
MNIST_SIZE = 28
#: The first image of MNIST's training file held out for validation (55,000 / 5,000 / 10,000).
VALIDATION_START = 55_000
VALIDATION_IMAGES = 5_000
TEST_IMAGES = 10_000
CLASSES = 10


def as_rgb_bytes(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """float (N, 28, 28) pixels / 255 to uint8 (N, 3, S, S): the original bytes, zero-padded to
    ``image_size`` around the centre, the gray channel copied to three."""
    if image_size < MNIST_SIZE:
        raise DataError(
            f"data.image_size={image_size}: the digits are {MNIST_SIZE} px and are padded, never "
            f"shrunk; use --set data.image_size={MNIST_SIZE} or more"
        )
    pixels = (images * 255).round().to(torch.uint8)
    before = (image_size - MNIST_SIZE) // 2
    after = image_size - MNIST_SIZE - before
    padded = F.pad(pixels, (before, after, before, after))
    return padded.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


class DigitSplit:
    """An evaluation split held in memory: every image once, in order, in batches of
    ``batch_size`` (the interface of ``ImageEvalSplit``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.batch_size = images, labels, batch_size

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.labels), self.batch_size):
            stop = start + self.batch_size
            yield self.images[start:stop], self.labels[start:stop]


def build_digits(source: str, data_dir: Path | None, config: Mapping[str, Any]) -> DataBundle:
    """Training, validation and test splits of MNIST as ResNet input (module docstring);
    ``config`` gives image_size, train_examples, valid_examples, test_examples and
    eval_batch_size. DataError (exit 2) on counts beyond what MNIST holds."""
    image_size = int(config["image_size"])
    counts = {
        key: positive_count(config, key)
        for key in ("train_examples", "valid_examples", "test_examples")
    }
    limits = {
        "train_examples": VALIDATION_START,
        "valid_examples": VALIDATION_IMAGES,
        "test_examples": TEST_IMAGES,
    }
    for key, limit in limits.items():
        if counts[key] > limit:
            raise DataError(
                f"data.{key}={counts[key]}: MNIST holds {limit:,} images for that split; "
                f"use --set data.{key}=N with N <= {limit}"
            )
    train_images, train_labels = load_mnist(source=source, data_dir=data_dir, split="train")
    test_images, test_labels = load_mnist(source=source, data_dir=data_dir, split="test")
    train_count, valid_count, test_count = counts.values()
    valid = slice(VALIDATION_START, VALIDATION_START + valid_count)
    eval_batch = int(config["eval_batch_size"])
    return DataBundle(
        train=ShuffledExamples(
            as_rgb_bytes(train_images[:train_count], image_size), train_labels[:train_count]
        ),
        valid=DigitSplit(
            as_rgb_bytes(train_images[valid], image_size), train_labels[valid], eval_batch
        ),
        test=DigitSplit(
            as_rgb_bytes(test_images[:test_count], image_size), test_labels[:test_count], eval_batch
        ),
        info={
            "source": source,
            "dataset": "mnist",
            "train": train_count,
            "valid": valid_count,
            "test": test_count,
            "splits": (
                f"train: MNIST training images 0-{train_count - 1}; valid: training images "
                f"{VALIDATION_START}-{VALIDATION_START + valid_count - 1}; test: MNIST test "
                f"images 0-{test_count - 1}"
            ),
        },
    )
