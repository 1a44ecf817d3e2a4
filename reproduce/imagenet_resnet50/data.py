"""The experiment's ImageNet data: a deterministic, exactly resumable stream of augmented
training batches through a torch DataLoader, and the evaluation split.

Determinism does not depend on the loader: the order of examples is a permutation per (seed,
epoch), and every augmented image draws its randomness from a seed made of (seed, epoch, index)
(``TransformedImages``), so the same command gives the same batches whatever the number of
workers, and a run resumed at step s sees exactly the batches s, s+1, ... of the uninterrupted run.
Batches hold uint8 images; the loss normalizes them on the training device
(``reproduce.datasets.imagenet.normalize``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from reproduce.datasets import imagenet
from reproduce.datasets.imagenet import TransformedImages, check_labels
from reproduce.harness.run.experiment import Batch, DataBundle, rank_share, shuffled_batches

#: Batches each loader worker prepares ahead (DataLoader's prefetch_factor).
PREFETCH_PER_WORKER = 4


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of example ``index`` in ``epoch`` of a run with ``seed``."""
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % 2**63


def _loader(dataset: TransformedImages, batches: Any, workers: int, pin: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=pin and workers == 0,  # with workers, the stream pins the assembled batch
        prefetch_factor=PREFETCH_PER_WORKER if workers else None,
    )


class ImageTrainStream:
    """The training split as the trainer's ``TrainData``: global batches (or this rank's slice)
    of ``Batch((uint8 images (B, 3, S, S), int64 labels))``, epochs reshuffled and cut across
    like ``ShuffledExamples``, so a batch-B run takes exactly ``epochs * N / B`` steps.

    Each rank's slice is loaded in chunks of at most ``loader_batch`` images (one chunk is one
    DataLoader batch, made by one worker), so a large per-device batch keeps every worker busy
    and no worker holds a whole 32K batch. With CUDA, the assembled batch is in pinned memory so
    that its copies to the device run asynchronously.
    """

    def __init__(
        self, dataset: TransformedImages, workers: int, loader_batch: int, pin_memory: bool
    ) -> None:
        if workers < 0 or loader_batch < 1:
            raise ValueError(f"workers {workers} must be >= 0 and loader_batch {loader_batch} >= 1")
        self.dataset, self.workers, self.loader_batch = dataset, workers, loader_batch
        self.pin_memory = pin_memory
        self.size = len(dataset)

    def steps_per_epoch(self, batch_size: int) -> float:
        return self.size / batch_size

    def stream(
        self, batch_size: int, seed: int, start_step: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        share = rank_share(batch_size, shard)
        per_rank = share.stop - share.start
        chunk = min(per_rank, self.loader_batch)
        bounds = [(start, min(start + chunk, per_rank)) for start in range(0, per_rank, chunk)]

        def chunks() -> Iterator[list[tuple[int, int]]]:
            for keys in shuffled_batches(self.size, batch_size, seed, start_step):
                mine = keys[share]
                for start, end in bounds:
                    yield [(sample_seed(seed, e, i), i) for e, i in mine[start:end]]

        loaded = iter(_loader(self.dataset, chunks(), self.workers, self.pin_memory))
        while True:
            parts = [next(loaded) for _ in bounds]
            images, labels = self._assemble([p[0] for p in parts], [p[1] for p in parts])
            check_labels(labels, self.dataset)
            yield Batch((images, labels))

    def _assemble(
        self, images: list[torch.Tensor], labels: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if len(images) == 1 and (not self.pin_memory or images[0].is_pinned()):
            return images[0], labels[0]
        count = sum(len(part) for part in labels)
        out_images = torch.empty(
            (count, *images[0].shape[1:]), dtype=images[0].dtype, pin_memory=self.pin_memory
        )
        out_labels = torch.empty(count, dtype=labels[0].dtype, pin_memory=self.pin_memory)
        torch.cat(images, out=out_images)
        torch.cat(labels, out=out_labels)
        return out_images, out_labels


class ImageEvalSplit:
    """An evaluation split: every image once, in order, in batches of ``batch_size``."""

    def __init__(
        self, dataset: TransformedImages, workers: int, batch_size: int, pin_memory: bool
    ) -> None:
        self.dataset, self.workers, self.batch_size = dataset, workers, batch_size
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count, size = len(self.dataset), self.batch_size
        ranges = [list(range(start, min(start + size, count))) for start in range(0, count, size)]
        # pin_memory is the DataLoader's own here: the batch is one chunk.
        loader = DataLoader(
            self.dataset,
            batch_sampler=ranges,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            prefetch_factor=PREFETCH_PER_WORKER if self.workers else None,
        )
        for images, labels in loader:
            check_labels(labels, self.dataset)
            yield images, labels


def build_data(source: str, data_dir: Path | None, config: Mapping[str, Any]) -> DataBundle:
    """Train and evaluation splits from the shipped sample (``data.sample``), the standard folder
    layout, or the hub copy. ImageNet's test labels are not public, so the validation set is
    evaluated every epoch and at the end, as the paper, the NUS recipe and MLPerf report it."""
    image_size = int(config["image_size"])
    classes = imagenet.class_subset(int(config["classes"]))
    if config["sample"]:
        train_images = val_images = imagenet.sample_images()
        where = str(imagenet.SAMPLE_DIR)
    elif source == "hub":
        train_images = imagenet.hub_images("train", data_dir, classes)
        val_images = imagenet.hub_images("val", data_dir, classes)
        where = str(data_dir) if data_dir is not None else imagenet.HUB_REPO
    else:
        root = data_dir if data_dir is not None else imagenet.DEFAULT_DIR
        imagenet.check_layout(root)
        train_images = imagenet.folder_images(root, "train", classes)
        val_images = imagenet.folder_images(root, "val", classes)
        where = str(root)
    pin = torch.cuda.is_available()
    workers = int(config["workers"])
    train = ImageTrainStream(
        TransformedImages(train_images, imagenet.train_transform(image_size), image_size),
        workers=workers,
        loader_batch=int(config["loader_batch"]),
        pin_memory=pin,
    )
    valid = ImageEvalSplit(
        TransformedImages(val_images, imagenet.eval_transform(image_size), image_size),
        workers=workers,
        batch_size=int(config["eval_batch_size"]),
        pin_memory=pin,
    )
    return DataBundle(
        train=train,
        valid=valid,
        test=valid,
        info={
            "source": "sample" if config["sample"] else source,
            "location": where,
            "train": len(train_images),
            "valid": len(val_images),
            "test": len(val_images),
            "test_split": "the ILSVRC-2012 validation set (its test labels are not public)",
        },
    )
