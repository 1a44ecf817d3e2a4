"""Shared plumbing for ``source="hub"``: the Hugging Face ``datasets`` library.

Without ``data_dir`` the dataset comes from the Hub (or the local HF cache); with it,
from a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
(read with ``datasets.load_from_disk``) or a directory of data files that
``datasets.load_dataset(path)`` understands (e.g. a clone of the Hub repository).
Any failure becomes a DataError that says what to do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from reproduce.datasets.integrity import DataError

_TRUE = {"1", "ON", "YES", "TRUE"}
_SAVED_MARKERS = ("dataset_dict.json", "state.json")


def import_datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the test extras install it
        raise DataError(
            "source='hub' needs the Hugging Face `datasets` package "
            "(pip install 'date-repro[hub]'), or use source='local'"
        ) from exc
    return datasets


def offline_env_requested() -> bool:
    """True if HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set to a true value right now."""
    return any(
        os.environ.get(name, "").strip().upper() in _TRUE
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


@contextlib.contextmanager
def honour_offline_env() -> Iterator[None]:
    """Apply HF_HUB_OFFLINE / HF_DATASETS_OFFLINE as they are *now*.

    ``datasets`` and ``huggingface_hub`` read these variables once, at import. If a
    caller sets one later, the libraries would still try the network (and retry for
    ~25 s on a machine without one); this switches their offline flags on for the call.
    """
    if not offline_env_requested():
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    targets = [(datasets.config, "HF_HUB_OFFLINE"), (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved = [(module, name, getattr(module, name)) for module, name in targets]
    try:
        for module, name in targets:
            setattr(module, name, True)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def is_saved_dataset_dir(path: Path) -> bool:
    """True if ``path`` was written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return any((path / marker).is_file() for marker in _SAVED_MARKERS)


def load_from_hub(repo_id: str, config_name: str | None = None) -> Any:
    """``datasets.load_dataset(repo_id, config_name)``, with failures turned into DataError."""
    datasets = import_datasets()
    try:
        with honour_offline_env():
            return datasets.load_dataset(repo_id, config_name)
    except (OSError, datasets.exceptions.DatasetsError) as exc:
        raise DataError(
            f"could not load {repo_id!r} from the Hugging Face Hub: the hub is unreachable "
            f"or offline mode is on ({type(exc).__name__}: {exc}). This project runs without "
            "network access: pass --data-dir with a saved copy (a directory written by "
            "Dataset.save_to_disk / DatasetDict.save_to_disk, or the dataset's files), or use "
            "source='local' for the copy shipped in data/"
        ) from exc


def load_from_dir(data_dir: Path) -> Any:
    """A dataset saved with ``save_to_disk``, or data files read by ``load_dataset(dir)``."""
    datasets = import_datasets()
    if not data_dir.is_dir():
        raise DataError(f"dataset directory not found: {data_dir}")
    try:
        if is_saved_dataset_dir(data_dir):
            return datasets.load_from_disk(str(data_dir))
        with honour_offline_env():
            return datasets.load_dataset(str(data_dir))
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"could not read a dataset from {data_dir} ({type(exc).__name__}: {exc}); "
            "expected a directory written by save_to_disk or the dataset's data files"
        ) from exc


def pick_split(obj: Any, names: Sequence[str], where: str) -> Any:
    """The first of ``names`` in a DatasetDict; a plain Dataset is returned as it is."""
    datasets = import_datasets()
    if isinstance(obj, datasets.DatasetDict):
        for name in names:
            if name in obj:
                return obj[name]
        raise DataError(
            f"{where} has no split {names[0]!r} (looked for {list(names)}; "
            f"it has {sorted(obj.keys())})"
        )
    return obj
