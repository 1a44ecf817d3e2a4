"""ILSVRC-2012's classes and split sizes: what both the ImageNet loader (``imagenet.py``) and
the archive preparation (``imagenet_prepare.py``) check against.

A class index is the position of the wnid in the sorted list of the 1000 ILSVRC-2012 wnids
(``data/imagenet_sample/wnids_1000.txt``, sha256-checked).
"""

from __future__ import annotations

import functools
import re

from reproduce.datasets.integrity import (
    DATA_ROOT,
    DataError,
    expected_content_sha256,
    read_verified,
)

CLASSES = 1000
#: Images in the ILSVRC-2012 classification train and validation sets (the official archives;
#: torchvision's ImageNet docs and every ImageNet paper's "1.28M").
TRAIN_IMAGES = 1_281_167
VAL_IMAGES = 50_000
WNIDS_FILE = DATA_ROOT / "imagenet_sample" / "wnids_1000.txt"
WNID_PATTERN = re.compile(r"^n\d{8}$")


@functools.cache
def wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 wnids in class-index order (checked against data/checksums.json)."""
    text = read_verified(WNIDS_FILE, expected_content_sha256("imagenet_sample/wnids_1000.txt"))
    found = tuple(line.split("_", 1)[0] for line in text.decode("utf-8").splitlines() if line)
    if len(found) != CLASSES or list(found) != sorted(found):
        raise DataError(f"{WNIDS_FILE}: expected the 1000 wnids in sorted order")
    return found
