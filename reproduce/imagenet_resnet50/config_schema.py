"""ImageNet ResNet-50's configuration keys: types, ranges and why
(``reproduce.harness.run.schema``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reproduce.datasets.imagenet import CLASSES
from reproduce.harness.run.schema import ConfigSchema, ConfigView, Field, count, fraction

from .digits import TEST_IMAGES, VALIDATION_IMAGES, VALIDATION_START

#: Activation values ResNet-50's backward pass keeps per 224-px image, at least: measured at 64
#: and 128 px with torch.autograd.graph.saved_tensors_hooks (parameters left out) as 21.8
#: million, scaled by area (tests/test_config_schema.py checks the bound); float32.
SAVED_VALUES_AT_224 = 20_000_000
FLOAT_BYTES = 4
#: ResNet-50 halves the image five times (He et al. 2015): from 32 px its last stage is 1 x 1.
SMALLEST_IMAGE = 32
#: The proxy's MNIST digits (digits.py): 10 classes; its splits' sizes.
DIGITS = 10


def activation_bytes(model: Mapping[str, Any], data: Mapping[str, Any], micro_batch: int) -> float:
    """Lower bound of a micro-batch's activations (``SAVED_VALUES_AT_224``, by area)."""
    area = (int(data["image_size"]) / 224) ** 2
    return float(micro_batch * SAVED_VALUES_AT_224 * area * FLOAT_BYTES)


def outputs_fit_labels(view: ConfigView) -> str | None:
    """The model needs an output for every label: ImageNet's keep their index among the 1000
    (a class subset included), the proxy's digits are 0 to 9."""
    outputs = int(view.model.get("classes", CLASSES))
    dataset = view.data.get("dataset", "imagenet")
    labels = DIGITS if dataset == "mnist" else CLASSES
    if outputs < labels:
        return (
            f"model.classes={outputs}: the {dataset} labels go up to {labels - 1}, so the model "
            f"needs {labels} outputs; use --set model.classes={labels} or more"
        )
    return None


def sample_means_sample(view: ConfigView) -> str | None:
    """data.sample=true reads the 10 shipped images: settings that choose other data would be
    ignored, so they are refused."""
    if not view.data["sample"] or view.data.get("dataset", "imagenet") != "imagenet":
        return None
    if view.data_dir is not None:
        return (
            f"--data-dir {view.data_dir} with data.sample=true (the smoke preset's): the sample "
            "is the 10 images shipped in data/imagenet_sample; drop --data-dir, or read ImageNet "
            "from that folder with --set data.sample=false"
        )
    if view.source != "local":
        return f"--set data.source={view.source} with data.sample=true: the sample is shipped"
    if "data.classes" in view.user_keys:
        return (
            f"--set data.classes={view.data['classes']} with data.sample=true: the sample's 10 "
            "images are 10 classes; set data.sample=false to train on a class subset"
        )
    return None


SCHEMA = ConfigSchema(
    model={
        "zero_init_residual": Field(bool),
        "label_smoothing": fraction("a share of the target's probability (NUS recipe: 0.1)"),
        "channels_last": Field(bool),
        "classes": count(1, CLASSES, "outputs of the classifier (the proxy's 10 digits)"),
    },
    data={
        "source": Field(str, choices=("local", "hub")),
        "sample": Field(bool),
        "image_size": count(SMALLEST_IMAGE, why="pixels; ResNet-50 halves the image five times"),
        "classes": count(1, CLASSES, "a subset of ImageNet-1k's classes"),
        "workers": count(0, why="data loader processes; 0 loads in the training process"),
        "loader_batch": count(why="images per loader task"),
        "eval_batch_size": count(why="images per evaluation batch"),
        "dataset": Field(str, choices=("imagenet", "mnist"), why="the proxy reads MNIST"),
        "train_examples": count(1, VALIDATION_START, "MNIST's training images before 55,000"),
        "valid_examples": count(1, VALIDATION_IMAGES, "MNIST's held-out training images"),
        "test_examples": count(1, TEST_IMAGES, "MNIST's test split"),
    },
    rules=(outputs_fit_labels, sample_means_sample),
    activation_bytes=activation_bytes,
)
