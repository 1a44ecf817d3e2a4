"""ResNet-50 v1.5 exactly as torchvision builds it, the loss and the evaluation.

The model is ``torchvision.models.resnet50`` (25,557,032 parameters; v1.5: the stride-2 of each
downsampling block sits in its 3x3 convolution). Two loss-side settings ride on the module as
plain attributes (not parameters or buffers, so the state dict is torchvision's):
``label_smoothing`` and ``channels_last`` (the memory format the loss gives the inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reproduce.datasets.imagenet import CLASSES, normalize
from reproduce.harness.run.experiment import Batch


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """torchvision's ResNet-50, randomly initialized (He et al. 2015 for convolutions), with
    ``classes`` outputs (1000 unless a preset sets it: the proxy's 10 digits).

    ``zero_init_residual`` starts the last batch-norm scale of every residual block at 0, so each
    block begins as the identity (Goyal et al. 2017, section 5.1). ``channels_last`` stores the
    weights NHWC, which cuDNN's and oneDNN's fastest convolutions (and bf16 tensor cores) use.
    """
    from torchvision.models import resnet50

    model = resnet50(
        weights=None,
        num_classes=int(config.get("classes", CLASSES)),
        zero_init_residual=bool(config["zero_init_residual"]),
    )
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model.label_smoothing = float(config["label_smoothing"])
    model.channels_last = bool(config["channels_last"])
    return model


def _settings(model: nn.Module) -> nn.Module:
    """The ResNet itself, under a DistributedDataParallel wrapper or not."""
    return getattr(model, "module", model)


def model_inputs(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 images on the device to the model's normalized float input, in its memory format."""
    inputs = normalize(images)
    if _settings(model).channels_last and inputs.device.type in ("cpu", "cuda"):
        # XLA tensors have no strides: the XLA compiler picks its own layout.
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def loss(model: nn.Module, batch: Batch, state: Any) -> tuple[torch.Tensor, int, Any]:
    """Summed cross-entropy with label smoothing (Szegedy et al. 2016, as torch defines it: the
    target puts 1 - eps + eps/K on the label and eps/K elsewhere; the NUS recipe uses 0.1)."""
    images, labels = batch.tensors
    logits = model(model_inputs(model, images))
    smoothing = _settings(model).label_smoothing
    summed = F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="sum")
    return summed, batch.size, None


def evaluate(
    model: nn.Module, split: Any, device: torch.device, batch_size: int
) -> dict[str, float]:
    """Top-1 and top-5 accuracy and the mean cross-entropy (no smoothing) over the whole split.

    The split's own batch size is used (``data.eval_batch_size``): the trainer's default of 1024
    images at 224 px would not fit a 16 GiB GPU's memory even without gradients.
    """
    correct1 = correct5 = count = 0
    loss_sum = 0.0
    for images, labels in split.batches():
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        logits = model(model_inputs(model, images)).float()
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        hits = logits.topk(5, dim=1).indices == labels[:, None]
        correct1 += int(hits[:, 0].sum())
        correct5 += int(hits.any(dim=1).sum())
        count += len(labels)
    return {"top1": correct1 / count, "top5": correct5 / count, "loss": loss_sum / count}
