"""The preparation command on small archives built here like the official ones (a train tar of
1000 per-class tars, a flat validation tar and its labels in the three accepted formats), then the
experiment end to end on the prepared folder."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reproduce.datasets import imagenet, imagenet_prepare
from reproduce.datasets.imagenet import DataError
from reproduce.harness.cli.run import main as run_main

VAL_IMAGES = 1000  # one per class, in a shuffled class order


def tiny_jpegs() -> list[bytes]:
    """The 10 sample images, shrunk to 24 px and encoded again: small, real JPEGs."""
    sample = imagenet.sample_images()
    encoded = []
    for index in range(len(sample)):
        with Image.open(sample.describe(index)) as image:
            image = image.convert("RGB")
            image.thumbnail((24, 24))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG")
            encoded.append(buffer.getvalue())
    return encoded


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def val_wnids() -> list[str]:
    """The class of validation image 1, 2, ...: every class once, in a shuffled order."""
    order = np.random.default_rng(0).permutation(1000)
    return [imagenet.wnids()[index] for index in order]


def write_devkit(path: Path, labels: list[str]) -> None:
    """A devkit tar.gz with meta.mat (leaf synsets under shuffled ILSVRC2012_IDs, plus two inner
    nodes that must be ignored) and the ground-truth IDs of the validation images."""
    import scipy.io

    wnids = imagenet.wnids()
    ids = np.random.default_rng(1).permutation(1000) + 1
    fields = [(name, "O") for name in ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children")]
    synsets = np.empty((1002,), dtype=fields)
    for position, wnid in enumerate(wnids):
        synsets[position] = (np.uint16(ids[position]), wnid, wnid, "leaf", np.uint8(0))
    synsets[1000] = (np.uint16(1001), "n00001740", "entity", "root", np.uint8(5))
    synsets[1001] = (np.uint16(1002), "n00002137", "abstraction", "inner", np.uint8(3))
    meta = io.BytesIO()
    scipy.io.savemat(meta, {"synsets": synsets.reshape(-1, 1)})
    id_of = {wnid: int(ids[position]) for position, wnid in enumerate(wnids)}
    truth = "".join(f"{id_of[wnid]}\n" for wnid in labels).encode()
    with tarfile.open(path, "w:gz") as devkit:
        add_file(devkit, "ILSVRC2012_devkit_t12/data/meta.mat", meta.getvalue())
        add_file(devkit, f"ILSVRC2012_devkit_t12/{imagenet_prepare.GROUND_TRUTH}", truth)


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("archives")
    jpegs = tiny_jpegs()
    with tarfile.open(folder / "ILSVRC2012_img_train.tar", "w") as train:
        for position, wnid in enumerate(imagenet.wnids()):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as per_class:
                add_file(per_class, f"{wnid}_{position}.JPEG", jpegs[position % 10])
            add_file(train, f"{wnid}.tar", inner.getvalue())
    labels = val_wnids()
    with tarfile.open(folder / "ILSVRC2012_img_val.tar", "w") as val:
        for number in range(1, VAL_IMAGES + 1):
            name = imagenet_prepare.validation_image_name(number)
            add_file(val, name, jpegs[number % 10])
    write_devkit(folder / "ILSVRC2012_devkit_t12.tar.gz", labels)
    rows = [
        f"{imagenet_prepare.validation_image_name(number)[:-5]},{wnid} 1 2 30 40 {wnid} 5 6 7 8"
        for number, wnid in enumerate(labels, start=1)
    ]
    (folder / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows))
    (folder / "synset_labels.txt").write_text("\n".join(labels) + "\n")
    return {
        "train": folder / "ILSVRC2012_img_train.tar",
        "val": folder / "ILSVRC2012_img_val.tar",
        "devkit": folder / "ILSVRC2012_devkit_t12.tar.gz",
        "csv": folder / "LOC_val_solution.csv",
        "text": folder / "synset_labels.txt",
    }


@pytest.fixture(scope="module")
def prepared(archives, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "imagenet"
    imagenet_prepare.prepare(
        out, archives["train"], archives["val"], archives["devkit"], log=lambda _: None
    )
    return out


@pytest.mark.parametrize("labels", ["devkit", "csv", "text"])
def test_every_label_format_gives_the_same_classes(archives, labels):
    read = imagenet_prepare.read_validation_labels(archives[labels])
    expected = val_wnids()
    assert len(read) == VAL_IMAGES
    for number in (1, 2, 500, 1000):
        assert read[imagenet_prepare.validation_image_name(number)] == expected[number - 1]


def test_prepare_gives_the_standard_layout(prepared, archives):
    imagenet.check_layout(prepared)  # 1000 class folders in train/ and val/
    wnids = imagenet.wnids()
    assert sorted(p.name for p in (prepared / "train" / wnids[3]).iterdir()) == [
        f"{wnids[3]}_3.JPEG"
    ]
    first_label = val_wnids()[0]
    assert (prepared / "val" / first_label / "ILSVRC2012_val_00000001.JPEG").is_file()
    assert sum(1 for _ in (prepared / "val").glob("*/*.JPEG")) == VAL_IMAGES
    assert not list(prepared.glob("*.partial"))
    record = json.loads((prepared / "prepared.json").read_text())
    assert record["train"]["images"] == 1000 and record["train"]["classes"] == 1000
    assert record["val"]["images"] == VAL_IMAGES and record["val"]["labels"].endswith(".tar.gz")
    # the files are the archive's bytes: one of them decodes to a 24 px image
    image = imagenet.decode_image(
        (prepared / "train" / wnids[0] / f"{wnids[0]}_0.JPEG").read_bytes()
    )
    assert max(image.shape[1:]) == 24


def test_the_experiment_trains_on_the_prepared_folder(prepared, tmp_path):
    out = tmp_path / "runs"
    argv = ["imagenet_resnet50", "--preset", "smoke", "--data-dir", str(prepared), "--quiet"]
    argv += ["--set", "data.sample=false", "--set", "data.classes=10", "--methods", "date"]
    argv += ["--batch-sizes", "4", "--set", "run.micro_batch_size=2", "--set", "epochs=1"]
    argv += ["--out", str(out)]
    assert run_main(argv) == 0
    record = json.loads((out / "runs" / "date_b4_s0.json").read_text())
    assert record["status"] == "ok"
    assert record["data"]["train"] == 10 and record["data"]["location"] == str(prepared)
    assert record["micro_batch_size"] == 2 and record["accumulation_steps"] == 2
    assert set(record["final"]) == {"top1", "top5", "loss"}


def test_an_existing_split_is_never_touched_and_a_partial_one_is_replaced(archives, tmp_path):
    out = tmp_path / "imagenet"
    (out / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="already exists"):
        imagenet_prepare.prepare(out, train_tar=archives["train"], log=lambda _: None)
    (out / "val.partial" / "junk").mkdir(parents=True)
    messages: list[str] = []
    imagenet_prepare.prepare(
        out, val_tar=archives["val"], val_labels=archives["csv"], log=messages.append
    )
    assert any("left by an interrupted run" in message for message in messages)
    assert not (out / "val.partial").exists() and (out / "val").is_dir()
    assert not (out / "val" / "junk").exists()


def test_labels_that_do_not_fit_the_archive_are_errors_naming_the_image(archives, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("\n".join(val_wnids()[:999]) + "\n")
    with pytest.raises(DataError, match=r"no label for 'ILSVRC2012_val_00001000\.JPEG'"):
        imagenet_prepare.prepare(
            tmp_path / "a", val_tar=archives["val"], val_labels=short, log=lambda _: None
        )
    assert not (tmp_path / "a" / "val").exists()
    long = tmp_path / "long.txt"
    long.write_text("\n".join([*val_wnids(), "n01440764"]) + "\n")
    with pytest.raises(DataError, match="lacks 1 of the 1001 labelled images"):
        imagenet_prepare.prepare(
            tmp_path / "b", val_tar=archives["val"], val_labels=long, log=lambda _: None
        )
    bad = tmp_path / "bad.txt"
    bad.write_text("n01440764\nn99999999\n")
    with pytest.raises(DataError, match="line 2: 'n99999999' is not one of the 1000"):
        imagenet_prepare.read_validation_labels(bad)


def test_a_train_archive_without_class_tars_is_refused(tmp_path):
    flat = tmp_path / "flat.tar"
    with tarfile.open(flat, "w") as archive:
        add_file(archive, "n01440764_1.JPEG", tiny_jpegs()[0])
    with pytest.raises(DataError, match="is not a class archive"):
        imagenet_prepare.prepare(tmp_path / "out", train_tar=flat, log=lambda _: None)
    assert not (tmp_path / "out" / "train").exists()


def test_the_command_line_exits_2_on_bad_input_and_0_when_done(archives, tmp_path, capsys):
    assert imagenet.main(["prepare", "--out", str(tmp_path / "x")]) == 2
    assert "nothing to do" in capsys.readouterr().err
    missing = tmp_path / "ILSVRC2012_img_train.tar"
    assert (
        imagenet.main(["prepare", "--out", str(tmp_path / "x"), "--train-tar", str(missing)]) == 2
    )
    assert f"{missing}: no such file" in capsys.readouterr().err
    argv = ["prepare", "--out", str(tmp_path / "y"), "--val-tar", str(archives["val"])]
    assert imagenet.main([*argv, "--val-labels", str(archives["text"])]) == 0
    assert f"--data-dir {tmp_path / 'y'}" in capsys.readouterr().out


def test_a_corrupt_image_met_during_training_stops_the_run_naming_it(prepared, tmp_path, capsys):
    copy = tmp_path / "imagenet"
    shutil.copytree(prepared, copy)
    wnid = imagenet.wnids()[0]
    bad = copy / "train" / wnid / f"{wnid}_0.JPEG"
    bad.write_bytes(b"\xff\xd8 truncated")
    argv = ["imagenet_resnet50", "--preset", "smoke", "--data-dir", str(copy), "--quiet"]
    argv += ["--set", "data.sample=false", "--set", "data.classes=10", "--methods", "date"]
    argv += ["--batch-sizes", "4", "--set", "epochs=1", "--out", str(tmp_path / "runs")]
    assert run_main(argv) == 2
    error = capsys.readouterr().err
    assert f"cannot read image {bad}" in error and "Traceback" not in error
    assert not list((tmp_path / "runs" / "runs").glob("*.json"))
