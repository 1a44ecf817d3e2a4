"""Turn the official ILSVRC-2012 archives into the standard folder layout.

    python -m reproduce.datasets.imagenet prepare --train-tar ILSVRC2012_img_train.tar \\
        --val-tar ILSVRC2012_img_val.tar --val-labels ILSVRC2012_devkit_t12.tar.gz --out DIR

gives ``DIR/train/<wnid>/*.JPEG`` and ``DIR/val/<wnid>/*.JPEG`` (see reproduce.datasets.imagenet).

- Train: ``ILSVRC2012_img_train.tar`` holds one tar per class (``n01440764.tar``, ...), each
  holding that class's JPEGs. Both levels are read as streams (``tarfile`` mode ``r|*``): the
  138 GB archive is read once, front to back, and nothing but the images is written.
- Validation: ``ILSVRC2012_img_val.tar`` holds the 50,000 images flat
  (``ILSVRC2012_val_00000001.JPEG`` ...); ``--val-labels`` sorts them into class folders. It takes
  what users have: the devkit ``ILSVRC2012_devkit_t12.tar.gz`` (its
  ``data/ILSVRC2012_validation_ground_truth.txt`` gives an ILSVRC2012_ID per image, in image
  order, and ``data/meta.mat`` maps the IDs to wnids; read with scipy), Kaggle's
  ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the first word of which is the wnid),
  or a text file of 50,000 wnids, one per line in image order (TensorFlow slim's
  ``imagenet_2012_validation_synset_labels.txt``).
- Each split is written to ``DIR/<split>.partial`` and renamed to ``DIR/<split>`` only once it is
  complete, so an interrupted run never leaves a split that looks finished (a rerun replaces the
  ``.partial`` folder). An existing ``DIR/<split>`` is never touched. ``DIR/prepared.json``
  records the counts and the archives each split came from.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import shutil
import sys
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

from reproduce.datasets.imagenet_classes import (
    CLASSES,
    TRAIN_IMAGES,
    VAL_IMAGES,
    WNID_PATTERN,
    wnids,
)
from reproduce.datasets.integrity import DataError

GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
META = "data/meta.mat"
PROGRESS_EVERY = 10_000  # images between progress lines


def validation_image_name(number: int) -> str:
    """The file name of validation image ``number`` (1-based), as in the official archive."""
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def _known_wnid(wnid: str, where: str) -> str:
    if wnid not in _wnid_set():
        raise DataError(f"{where}: {wnid!r} is not one of the 1000 ILSVRC-2012 wnids")
    return wnid


def _wnid_set() -> frozenset[str]:
    return frozenset(wnids())


def _devkit_labels(path: Path) -> dict[str, str]:
    """Image name -> wnid from the devkit's ground truth and meta.mat (leaf synsets only)."""
    files: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:*") as devkit:
        for member in devkit:
            for wanted in (GROUND_TRUTH, META):
                if member.isfile() and member.name.endswith(wanted):
                    extracted = devkit.extractfile(member)
                    if extracted is not None:
                        files[wanted] = extracted.read()
    missing = [name for name in (GROUND_TRUTH, META) if name not in files]
    if missing:
        raise DataError(f"{path}: no {' or '.join(missing)} inside; is it the ILSVRC2012 devkit?")
    try:
        import scipy.io
    except ImportError as error:
        raise DataError(
            "reading the devkit's meta.mat needs scipy (pip install 'date-repro[vision]'); or "
            "pass Kaggle's LOC_val_solution.csv or a text file of wnids as --val-labels"
        ) from error
    synsets = scipy.io.loadmat(io.BytesIO(files[META]), squeeze_me=True)["synsets"]
    id_to_wnid = {
        int(synset["ILSVRC2012_ID"]): str(synset["WNID"])
        for synset in synsets
        if int(synset["num_children"]) == 0
    }
    labels = {}
    lines = files[GROUND_TRUTH].decode("ascii").split()
    for number, text in enumerate(lines, start=1):
        if int(text) not in id_to_wnid:
            raise DataError(f"{path}: {GROUND_TRUTH} line {number}: unknown ILSVRC2012_ID {text}")
        labels[validation_image_name(number)] = _known_wnid(id_to_wnid[int(text)], str(path))
    return labels


def _csv_labels(path: Path) -> dict[str, str]:
    """Image name -> wnid from Kaggle's LOC_val_solution.csv."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
            raise DataError(
                f"{path}: expected the columns ImageId,PredictionString (Kaggle's "
                f"LOC_val_solution.csv), found {reader.fieldnames}"
            )
        labels = {}
        for line, row in enumerate(reader, start=2):
            words = row["PredictionString"].split()
            if not words:
                raise DataError(f"{path} line {line}: empty PredictionString")
            labels[f"{row['ImageId']}.JPEG"] = _known_wnid(words[0], f"{path} line {line}")
    return labels


def _text_labels(path: Path) -> dict[str, str]:
    """Image name -> wnid from a file of wnids, one per line in image order."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    labels = {}
    for number, wnid in enumerate([line for line in lines if line], start=1):
        if not WNID_PATTERN.match(wnid):
            raise DataError(
                f"{path} line {number}: {wnid!r} is not a wnid; --val-labels takes the devkit "
                "(.tar.gz), Kaggle's LOC_val_solution.csv, or one wnid per line in image order"
            )
        labels[validation_image_name(number)] = _known_wnid(wnid, f"{path} line {number}")
    return labels


def read_validation_labels(path: Path) -> dict[str, str]:
    """Validation image name -> wnid, from any of the three formats (see the module docstring)."""
    if not path.is_file():
        raise DataError(f"--val-labels {path}: no such file")
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        labels = _devkit_labels(path)
    elif name.endswith(".csv"):
        labels = _csv_labels(path)
    else:
        labels = _text_labels(path)
    if not labels:
        raise DataError(f"{path}: no labels found")
    return labels


def _copy_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = archive.extractfile(member)
    if source is None:
        raise DataError(f"{member.name}: cannot be read from the archive")
    with source, target.open("wb") as handle:
        shutil.copyfileobj(source, handle, length=1 << 20)


def _files(archive: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """Regular members of a streamed archive with their base names (never a path: nothing is
    written outside the target folder, whatever the member names say)."""
    for member in archive:
        if member.isfile():
            yield member, PurePosixPath(member.name).name


def _open_stream(path: Path | None, fileobj: IO[bytes] | None = None) -> tarfile.TarFile:
    try:
        if fileobj is not None:
            return tarfile.open(fileobj=fileobj, mode="r|*")
        return tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError) as error:
        raise DataError(f"{path}: not a readable tar archive ({error})") from None


def extract_train(archive_path: Path, target: Path, log: Callable[[str], None]) -> dict[str, int]:
    """Every class tar inside the train archive into ``target/<wnid>/``; returns counts."""
    images = classes = 0
    try:
        with _open_stream(archive_path) as outer:
            for member, name in _files(outer):
                wnid, _, suffix = name.partition(".")
                if suffix.lower() != "tar":
                    raise DataError(
                        f"{archive_path}: member {member.name!r} is not a class archive (the "
                        "official train archive holds one <wnid>.tar per class)"
                    )
                folder = target / _known_wnid(wnid, f"{archive_path} member {member.name!r}")
                folder.mkdir(exist_ok=True)
                with _open_stream(None, outer.extractfile(member)) as inner:
                    for image, image_name in _files(inner):
                        _copy_member(inner, image, folder / image_name)
                        images += 1
                        if images % PROGRESS_EVERY == 0:
                            log(f"train: {images:,} images in {classes + 1} classes")
                classes += 1
    except tarfile.TarError as error:
        raise DataError(f"{archive_path}: truncated or corrupt archive ({error})") from None
    return {"images": images, "classes": classes}


def extract_val(
    archive_path: Path, labels: dict[str, str], target: Path, log: Callable[[str], None]
) -> dict[str, int]:
    """Every image of the flat validation archive into ``target/<wnid>/`` by its label."""
    seen: set[str] = set()
    try:
        with _open_stream(archive_path) as archive:
            for member, name in _files(archive):
                wnid = labels.get(name)
                if wnid is None:
                    raise DataError(
                        f"{archive_path}: no label for {member.name!r} in --val-labels; do the "
                        "labels belong to this archive?"
                    )
                folder = target / wnid
                folder.mkdir(exist_ok=True)
                _copy_member(archive, member, folder / name)
                seen.add(name)
                if len(seen) % PROGRESS_EVERY == 0:
                    log(f"val: {len(seen):,} images")
    except tarfile.TarError as error:
        raise DataError(f"{archive_path}: truncated or corrupt archive ({error})") from None
    absent = sorted(set(labels) - seen)
    if absent:
        raise DataError(
            f"{archive_path} lacks {len(absent)} of the {len(labels)} labelled images (first: "
            f"{absent[0]}): the archive is incomplete, or the labels are for another archive"
        )
    return {"images": len(seen), "classes": len(set(labels.values()))}


def prepare_split(
    out: Path,
    split: str,
    extract: Callable[[Path], dict[str, int]],
    sources: dict[str, str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run ``extract`` into ``out/<split>.partial``, then rename it to ``out/<split>``."""
    final, partial = out / split, out / f"{split}.partial"
    if final.exists():
        raise DataError(f"{final} already exists; delete it (or choose another --out) to redo it")
    if partial.exists():
        log(f"{partial}: left by an interrupted run, replaced")
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    counts = extract(partial)
    partial.rename(final)
    expected = {"train": TRAIN_IMAGES, "val": VAL_IMAGES}[split]
    summary = {**counts, **sources, "finished": dt.datetime.now(dt.timezone.utc).isoformat()}
    note = ""
    if counts["classes"] != CLASSES or counts["images"] != expected:
        note = (
            f" (the official archive gives {expected:,} images in {CLASSES} classes; the "
            "experiment refuses a folder without the 1000 classes)"
        )
    log(f"{final}: {counts['images']:,} images in {counts['classes']} classes{note}")
    return summary


def prepare(
    out: Path,
    train_tar: Path | None = None,
    val_tar: Path | None = None,
    val_labels: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Prepare the splits whose archives are given; returns what ``prepared.json`` records."""
    from reproduce.harness.core.io import atomic_write_json

    if train_tar is None and val_tar is None:
        raise DataError("nothing to do: pass --train-tar and/or --val-tar (with --val-labels)")
    if (val_tar is None) != (val_labels is None):
        raise DataError("--val-tar and --val-labels go together")
    for path in (train_tar, val_tar):
        if path is not None and not path.is_file():
            raise DataError(f"{path}: no such file")
    labels = read_validation_labels(val_labels) if val_labels is not None else None
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "prepared.json"
    record = json.loads(record_path.read_text("utf-8")) if record_path.is_file() else {}
    if train_tar is not None:
        record["train"] = prepare_split(
            out,
            "train",
            lambda target: extract_train(train_tar, target, log),
            {"archive": str(train_tar)},
            log,
        )
        atomic_write_json(record_path, record)
    if val_tar is not None and labels is not None:
        record["val"] = prepare_split(
            out,
            "val",
            lambda target: extract_val(val_tar, labels, target, log),
            {"archive": str(val_tar), "labels": str(val_labels)},
            log,
        )
        atomic_write_json(record_path, record)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reproduce.datasets.imagenet",
        description=__doc__.split("\n\n")[0],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "prepare",
        help="the official ILSVRC-2012 tars -> DIR/train/<wnid>/ and DIR/val/<wnid>/",
        description=(
            "Stream the official ILSVRC-2012 archives into DIR/train/<wnid>/*.JPEG and "
            "DIR/val/<wnid>/*.JPEG; each split appears only when complete."
        ),
    )
    command.add_argument("--out", type=Path, required=True, help="output folder DIR")
    command.add_argument("--train-tar", type=Path, help="ILSVRC2012_img_train.tar")
    command.add_argument("--val-tar", type=Path, help="ILSVRC2012_img_val.tar")
    command.add_argument(
        "--val-labels",
        type=Path,
        help="ILSVRC2012_devkit_t12.tar.gz, LOC_val_solution.csv, or a file of 50,000 wnids",
    )
    arguments = parser.parse_args(argv)
    try:
        prepare(
            arguments.out,
            train_tar=arguments.train_tar,
            val_tar=arguments.val_tar,
            val_labels=arguments.val_labels,
            log=lambda message: print(message, file=sys.stderr, flush=True),
        )
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, say: the split stays .partial, never half-finished
        print(f"error: {error}; the unfinished split is left as a .partial folder", file=sys.stderr)
        return 1
    print(f"prepared {arguments.out}: pass --data-dir {arguments.out} to reproduce/run.py")
    return 0
