"""Benchmarks of the ImageNet experiment (run with `pytest benchmarks/test_bench_imagenet.py`):

- one training step of torchvision's ResNet-50 at 224 px through the harness (the trainer's loop
  body: ``accumulate_gradients`` with the loss hook's on-device normalization, LARS, the DATE
  scheduler), on random uint8 images of the real shape; ``extra_info["images_per_second"]``;
- the decode and augmentation of one loader worker (``TransformedImages`` with the training
  transforms at 224 px, one thread as in a DataLoader worker) over the 10 shipped images, whose
  sizes (169x240 to 640x426) are those of ImageNet's; ``extra_info["images_per_second"]``.

`python -m reproduce.imagenet_resnet50.loader_speed` prints both on any device and the number of
workers that keeps the device fed.
"""

from __future__ import annotations

import math

import torch

import date
from reproduce.datasets import imagenet
from reproduce.harness.run.devices import resolve_device
from reproduce.harness.run.experiment import ShuffledExamples
from reproduce.harness.run.registry import get_experiment
from reproduce.harness.run.trainer import accumulate_gradients
from reproduce.imagenet_resnet50.data import sample_seed

BATCH_SIZE = 8  # about 2 s a step on one CPU thread at 224 px


def test_resnet50_training_step_at_224_px(benchmark):
    experiment = get_experiment("imagenet_resnet50")
    recipe = experiment.base_recipe.replace(batch_size=BATCH_SIZE)
    batch = experiment.synthetic_batch({}, experiment.data_defaults, 4 * BATCH_SIZE)
    train = ShuffledExamples(*batch.tensors)
    torch.manual_seed(0)
    model = experiment.build_model(experiment.model_defaults).train()
    optimizer = date.build_optimizer(model, recipe)
    scheduler = date.DateScheduler(optimizer, recipe, train.steps_per_epoch(BATCH_SIZE))
    stream = train.stream(BATCH_SIZE, seed=0)
    device = resolve_device("cpu")

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = accumulate_gradients(experiment, model, next(stream), BATCH_SIZE, {}, device)
        optimizer.step()
        scheduler.step()
        return loss

    loss = benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
    benchmark.extra_info["batch_size"] = BATCH_SIZE
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["images_per_second"] = BATCH_SIZE / benchmark.stats.stats.mean
    assert math.isfinite(loss)


def test_decode_and_augment_of_one_loader_worker(benchmark):
    source = imagenet.sample_images()
    dataset = imagenet.TransformedImages(source, imagenet.train_transform(224), 224)
    calls = {"count": 0}

    def one_pass() -> torch.Tensor:
        calls["count"] += 1
        images = [dataset[(sample_seed(0, calls["count"], i), i)][0] for i in range(len(dataset))]
        return torch.stack(images)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        images = benchmark.pedantic(one_pass, rounds=10, warmup_rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
    if benchmark.stats is not None:
        benchmark.extra_info["images_per_second"] = len(dataset) / benchmark.stats.stats.mean
    assert images.shape == (len(dataset), 3, 224, 224) and images.dtype == torch.uint8
