"""How many DataLoader workers keep a device fed: one worker's decode-and-augment rate against
the training step's rate on the device, both measured here and now.

    python -m reproduce.imagenet_resnet50.loader_speed [--device cuda] [--precision bf16]
        [--data-dir DIR] [--images 500] [--micro-batch N]

Decoding is timed in this process on one thread, as in a DataLoader worker (which sets torch to
one thread), on the training transforms at 224 px: over the 10 shipped images, or over
``--images`` images spread across the classes of ``DIR/train`` when ``--data-dir`` is given. The
training step is ``--plan``'s timing (reproduce.harness.sweep.estimate) on random images of the real
shape. Workers needed = ceil(step images/s / worker images/s), which assumes a CPU core per
worker; set it with ``--set data.workers=N``. Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from reproduce.datasets import imagenet
from reproduce.harness.run.devices import DEVICE_KINDS, resolve_device
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import PRECISIONS, default_micro_batch_size
from reproduce.harness.sweep import estimate
from reproduce.imagenet_resnet50.data import sample_seed


def spread_images(root: Path, count: int) -> imagenet.ImageFiles:
    """``count`` training images of ``root`` spread evenly over the listing of all classes."""
    listing = imagenet.folder_images(root, "train", imagenet.class_subset(imagenet.CLASSES))
    stride = max(1, len(listing) // count)
    chosen = range(0, len(listing), stride)[:count]
    return imagenet.ImageFiles([(listing.describe(i), listing.label(i)) for i in chosen])


def worker_rate(source: imagenet.ImageSource, image_size: int, minimum: int) -> float:
    """Images per second of decode and training augmentation on one thread."""
    dataset = imagenet.TransformedImages(source, imagenet.train_transform(image_size), image_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset[(0, 0)]  # warm up (imports, allocations)
        done, started, epoch = 0, time.perf_counter(), 0
        while done < minimum:
            for index in range(len(dataset)):
                _, label = dataset[(sample_seed(0, epoch, index), index)]
                if label < 0:
                    raise dataset.failure(index)
            done += len(dataset)
            epoch += 1
        return done / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reproduce.imagenet_resnet50.loader_speed",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--device", choices=DEVICE_KINDS, default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--data-dir", type=Path, help="ImageNet in the standard layout")
    parser.add_argument("--images", type=int, default=500, help="images decoded (at least)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--micro-batch", type=int, help="default: the experiment's for the device")
    arguments = parser.parse_args(argv)
    experiment = get_experiment("imagenet_resnet50")
    try:
        device = resolve_device(arguments.device)
        if arguments.data_dir is not None:
            imagenet.check_layout(arguments.data_dir)
            source = spread_images(arguments.data_dir, arguments.images)
            where = f"{len(source)} images of {arguments.data_dir / 'train'}"
        else:
            source = imagenet.sample_images()
            where = f"the {len(source)} shipped images of {imagenet.SAMPLE_DIR}"
    except (ValueError, imagenet.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    per_worker = worker_rate(source, arguments.image_size, arguments.images)
    print(
        f"decode and augment ({arguments.image_size} px, {where}): {per_worker:.0f} images/s "
        "per worker (one thread)"
    )
    data_config = {**experiment.data_defaults, "image_size": arguments.image_size}
    micro = arguments.micro_batch or default_micro_batch_size(
        experiment, experiment.base_recipe.batch_size, device
    )
    cost = estimate.measure_step_cost(
        experiment,
        experiment.base_recipe,
        experiment.model_defaults,
        data_config,
        device,
        micro,
        precision=arguments.precision,
    )
    step_rate = 1.0 / cost.seconds_per_example
    print(
        f"training step on {device.describe()['device_name']} ({arguments.device}, "
        f"{arguments.precision}, micro-batch {micro}): {step_rate:.1f} images/s"
    )
    print(
        f"workers needed to keep it fed: {math.ceil(step_rate / per_worker)} "
        f"(--set data.workers=N; the default is {experiment.data_defaults['workers']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
