"""The ImageNet pipeline on the shipped sample: labels, shapes, normalization, the deterministic
resumable stream (whatever the worker count), the hub path on a saved copy, and the errors that
name the bad file or folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from reproduce.datasets import imagenet
from reproduce.datasets.imagenet import DataError, TransformedImages
from reproduce.imagenet_resnet50.data import ImageEvalSplit, ImageTrainStream, build_data
from reproduce.imagenet_resnet50.experiment import DATA_DEFAULTS

#: The sample's class indices, from data/README.md (0-based, sorted wnids).
SAMPLE_LABELS = [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]


def sample_config(**changes) -> dict:
    return {**DATA_DEFAULTS, "sample": True, "image_size": 32, "workers": 0, **changes}


def train_stream(source, workers: int = 0, loader_batch: int = 64) -> ImageTrainStream:
    dataset = TransformedImages(source, imagenet.train_transform(32), 32)
    return ImageTrainStream(dataset, workers=workers, loader_batch=loader_batch, pin_memory=False)


def test_the_wnid_list_and_the_sample_labels():
    wnids = imagenet.wnids()
    assert len(wnids) == 1000 and wnids[0] == "n01440764" and wnids[-1] == "n15075141"
    sample = imagenet.sample_images()
    assert [sample.label(i) for i in range(len(sample))] == SAMPLE_LABELS
    for index in range(len(sample)):
        assert Path(sample.describe(index)).name.startswith(wnids[sample.label(index)])


def test_class_subset_is_spread_evenly_and_checked():
    assert imagenet.class_subset(100) == tuple(range(0, 1000, 10))
    assert imagenet.class_subset(1000) == tuple(range(1000))
    with pytest.raises(DataError, match="between 1 and 1000"):
        imagenet.class_subset(1001)


def test_decode_gives_rgb_uint8_also_for_the_grayscale_image():
    sample = imagenet.sample_images()
    gray = next(i for i in range(len(sample)) if "garbage_truck" in sample.describe(i))
    image = imagenet.decode_image(sample.read(gray))
    assert image.dtype == torch.uint8 and image.shape == (3, 511, 613)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    color = imagenet.decode_image(sample.read(0))
    assert color.shape == (3, 375, 500) and not torch.equal(color[0], color[2])


def test_train_and_eval_transforms_give_the_crop_size_in_uint8():
    sample = imagenet.sample_images()
    image = imagenet.decode_image(sample.read(3))  # 206 x 294, smaller than 224 on one side
    for transform in (imagenet.train_transform(224), imagenet.eval_transform(224)):
        out = transform(image)
        assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    assert imagenet.eval_resize(224) == 256 and imagenet.eval_resize(32) == 37
    # evaluation is deterministic; training augmentation is not, unless seeded
    evaluation = imagenet.eval_transform(224)
    assert torch.equal(evaluation(image), evaluation(image))


def test_normalize_is_scale_then_imagenet_mean_and_std():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = imagenet.normalize(images)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 2, 2)
    pixels = (0, 51, 255)
    expected = [
        (v / 255 - m) / s for v, m, s in zip(pixels, imagenet.MEAN, imagenet.STD, strict=True)
    ]
    for channel, value in enumerate(expected):
        torch.testing.assert_close(out[:, channel], torch.full((2, 2, 2), value))
    assert imagenet.MEAN == (0.485, 0.456, 0.406) and imagenet.STD == (0.229, 0.224, 0.225)


def test_stream_batches_have_the_shapes_labels_and_every_image_once_per_epoch():
    stream = train_stream(imagenet.sample_images()).stream(batch_size=4, seed=0)
    batches = [next(stream) for _ in range(5)]  # 20 examples: two epochs of 10
    for batch in batches:
        images, labels = batch.tensors
        assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8
        assert labels.dtype == torch.int64
    labels = torch.cat([batch.tensors[1] for batch in batches]).tolist()
    assert sorted(labels[:10]) == SAMPLE_LABELS and sorted(labels[10:]) == SAMPLE_LABELS
    assert labels[:10] != labels[10:]  # reshuffled


def test_stream_is_the_same_for_any_worker_count_and_resumes_exactly():
    source = imagenet.sample_images()
    reference = train_stream(source, workers=0).stream(batch_size=4, seed=3)
    expected = [next(reference).tensors for _ in range(6)]
    forked = train_stream(source, workers=2, loader_batch=3).stream(batch_size=4, seed=3)
    for images, labels in expected:
        got_images, got_labels = next(forked).tensors
        assert torch.equal(got_images, images) and torch.equal(got_labels, labels)
    resumed = train_stream(source).stream(batch_size=4, seed=3, start_step=4)
    for images, labels in expected[4:]:
        got_images, got_labels = next(resumed).tensors
        assert torch.equal(got_images, images) and torch.equal(got_labels, labels)
    other_seed = next(train_stream(source).stream(batch_size=4, seed=4)).tensors[0]
    assert not torch.equal(other_seed, expected[0][0])


def test_each_rank_gets_its_contiguous_slice_of_the_global_batch():
    source = imagenet.sample_images()
    whole = next(train_stream(source).stream(batch_size=6, seed=1)).tensors
    parts = [next(train_stream(source).stream(6, 1, shard=(rank, 2))).tensors for rank in (0, 1)]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])
    with pytest.raises(ValueError, match="not divisible"):
        next(train_stream(source).stream(5, 1, shard=(0, 2)))


def test_the_same_image_is_augmented_differently_in_each_epoch():
    stream = train_stream(imagenet.sample_images()).stream(batch_size=10, seed=0)
    first, second = next(stream).tensors, next(stream).tensors
    order_first, order_second = first[1].tolist(), second[1].tolist()
    label = order_first[0]
    assert not torch.equal(first[0][0], second[0][order_second.index(label)])


def test_build_data_on_the_sample_and_its_evaluation_split():
    data = build_data("local", None, sample_config())
    assert data.info["train"] == data.info["valid"] == 10 and data.info["source"] == "sample"
    assert data.train.steps_per_epoch(4) == 2.5
    assert data.valid is data.test
    batches = list(data.valid.batches())
    assert [len(labels) for _, labels in batches] == [10]
    images, labels = batches[0]
    assert images.shape == (10, 3, 32, 32) and labels.tolist() == SAMPLE_LABELS
    again = next(ImageEvalSplit(data.valid.dataset, 0, 4, False).batches())[0]
    assert torch.equal(again, images[:4])  # evaluation transforms are deterministic


def write_corrupt_copy(folder: Path) -> tuple[imagenet.ImageFiles, Path]:
    sample = imagenet.sample_images()
    folder.mkdir()
    samples = []
    for index in range(len(sample)):
        target = folder / Path(sample.describe(index)).name
        shutil.copyfile(sample.describe(index), target)
        samples.append((str(target), sample.label(index)))
    bad = Path(samples[4][0])
    bad.write_bytes(b"this is not a JPEG" * 20)
    return imagenet.ImageFiles(samples), bad


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_is_an_error_naming_the_file(tmp_path, workers):
    source, bad = write_corrupt_copy(tmp_path / "images")
    stream = train_stream(source, workers=workers).stream(batch_size=10, seed=0)
    with pytest.raises(DataError) as error:
        next(stream)
    message = str(error.value)
    assert str(bad) in message and "Traceback" not in message
    assert "Replace the file" in message
    evaluation = ImageEvalSplit(
        TransformedImages(source, imagenet.eval_transform(32), 32), workers, 4, False
    )
    with pytest.raises(DataError, match=str(bad)):
        list(evaluation.batches())


def make_layout(root: Path, train_classes: int = 1000, flat_val: bool = False) -> Path:
    for wnid in imagenet.wnids()[:train_classes]:
        (root / "train" / wnid).mkdir(parents=True)
    if flat_val:
        (root / "val").mkdir()
        (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    else:
        for wnid in imagenet.wnids():
            (root / "val" / wnid).mkdir(parents=True)
    return root


def test_layout_errors_name_the_folder_and_what_to_do(tmp_path):
    def error_for(root: Path) -> str:
        with pytest.raises(DataError) as error:
            imagenet.check_layout(root)
        message = str(error.value)
        for remedy in ("prepare", "--data-dir", "--preset smoke", "train/<wnid>"):
            assert remedy in message
        return message

    missing = tmp_path / "nothing"
    assert f"there is no folder {missing}" in error_for(missing)
    short = make_layout(tmp_path / "short", train_classes=999)
    assert f"{short / 'train'} has 999 class folders; ImageNet-1k has 1000" in error_for(short)
    flat = make_layout(tmp_path / "flat", flat_val=True)
    assert f"{flat / 'val'} holds image files, not one folder per class" in error_for(flat)
    odd = make_layout(tmp_path / "odd")
    shutil.rmtree(odd / "train" / imagenet.wnids()[5])
    (odd / "train" / "cats").mkdir()
    assert "1 folder(s) are not ILSVRC-2012 wnids (cats)" in error_for(odd)
    imagenet.check_layout(make_layout(tmp_path / "good"))  # the right layout passes


def test_an_empty_class_folder_is_an_error_naming_it(tmp_path):
    root = make_layout(tmp_path / "empty")
    with pytest.raises(DataError, match=str(root / "train")):
        imagenet.folder_images(root, "train", imagenet.class_subset(10))


def save_sample_to_disk(folder: Path) -> None:
    """A DatasetDict like ILSVRC/imagenet-1k's (image, label: ClassLabel of 1000) made from the
    sample images; labels in its order, which is the sorted-wnid order."""
    import datasets

    sample = imagenet.sample_images()
    rows = {
        "image": [{"bytes": sample.read(i), "path": None} for i in range(len(sample))],
        "label": [sample.label(i) for i in range(len(sample))],
    }
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(imagenet.wnids()))}
    )
    split = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(str(folder))


def test_the_hub_path_on_a_saved_copy_gives_the_same_batches_as_the_files(tmp_path):
    save_sample_to_disk(tmp_path / "hub")
    hub = build_data("hub", tmp_path / "hub", sample_config(sample=False))
    assert hub.info["train"] == 10 and hub.info["source"] == "hub"
    files = build_data("local", None, sample_config())
    for a, b in zip(
        next(hub.train.stream(10, seed=2)).tensors,
        next(files.train.stream(10, seed=2)).tensors,
        strict=True,
    ):
        assert torch.equal(a, b)
    subset = build_data("hub", tmp_path / "hub", sample_config(sample=False, classes=100))
    assert subset.info["train"] == 1  # every 10th class: of the sample's, only class 0
    assert next(subset.valid.batches())[1].tolist() == [0]


def test_the_hub_path_says_the_dataset_is_gated(monkeypatch):
    from reproduce.datasets import _hub

    def unreachable(repo_id, config_name=None):
        raise DataError(f"could not load {repo_id!r} from the Hugging Face Hub")

    monkeypatch.setattr(_hub, "load_from_hub", unreachable)
    with pytest.raises(DataError) as error:
        imagenet.hub_images("train", None, imagenet.class_subset(1000))
    message = str(error.value)
    assert "ILSVRC/imagenet-1k" in message and "gated" in message and "HF_TOKEN" in message
