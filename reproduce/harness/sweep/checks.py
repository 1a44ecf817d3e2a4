"""What a sweep checks before it trains: that its results can be written, that every batch has
a step of training data, and what each run's checkpoint allows (resume it, evaluate it, start
afresh, or refuse)."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..run.checkpoint import CorruptCheckpoint, load_checkpoint, set_aside
from ..run.experiment import TrainData
from .planning import PlannedRun, run_config, run_key
from .spec import SweepError, SweepSpec


def checkpoint_path(spec: SweepSpec, run: PlannedRun) -> Path:
    return spec.out_dir / "checkpoints" / f"{Path(run.name).stem}.pt"


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    """``key: saved -> current`` for every leaf where two run configs differ."""
    lines = []
    for key in sorted(set(saved) | set(current), key=str):
        before, after = saved.get(key, "(absent)"), current.get(key, "(absent)")
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            lines += config_differences(before, after, f"{prefix}{key}.")
        elif json.dumps(before, sort_keys=True, default=str) != json.dumps(
            after, sort_keys=True, default=str
        ):
            lines.append(f"{prefix}{key}: {before!r} in the checkpoint, {after!r} now")
    return lines


def check_checkpoint(
    spec: SweepSpec, run: PlannedRun, path: Path, log=print, resume_matching: bool = False
) -> dict[str, Any] | None:
    """Whether this run resumes from its checkpoint (a summary of it) or starts afresh (None).

    A checkpoint that cannot be read is set aside (renamed, kept) when the run starts afresh
    anyway; with --resume it is an error, because the user asked to continue it. With --resume, a
    checkpoint made for another configuration is refused: continuing it would train the old
    configuration under the new one's name. With ``resume_matching`` (a launcher's or a shard's
    worker, which picks up what a killed worker left), a checkpoint made with this run's config
    key is continued without --resume, and one made for another configuration is not used.
    """
    try:
        saved = load_checkpoint(path)
    except CorruptCheckpoint as error:
        if spec.resume:
            raise SweepError(
                f"--resume: {error}. Delete or move that file to start the run afresh "
                "(or rerun without --resume, which sets it aside and starts afresh)"
            ) from None
        aside = set_aside(path)
        print(
            f"warning: {error}; set aside as {aside.name}, the run starts afresh", file=sys.stderr
        )
        return None
    if saved is None:
        return None
    key = run_key(spec, run)
    if saved.get("trained") and saved.get("config_key") == key and not spec.resume:
        # Every step of this very run is done: evaluating it gives the record retraining would.
        log(f"{path}: this run's trained checkpoint; evaluating it (no retraining)")
        return {"progress": {"micro_batches": saved["progress"].get("micro_batches", [])}}
    if resume_matching and not spec.resume:
        if saved.get("config_key") != key:
            log(f"{path}: a checkpoint of another configuration exists; starting afresh")
            return None
        return {"progress": {"micro_batches": saved["progress"].get("micro_batches", [])}}
    if not spec.resume:
        log(f"{path}: a checkpoint exists; starting afresh (pass --resume to continue it)")
        return None
    if saved.get("config_key") != key:
        differences = config_differences(saved.get("config") or {}, run_config(spec, run))
        detail = "; ".join(differences) if differences else "it predates config keys"
        raise SweepError(
            f"--resume: the checkpoint {path} was made with config key "
            f"{saved.get('config_key')}, this run's is {key} ({detail}). Rerun with the "
            "checkpoint's settings to continue it, or delete the checkpoint to start afresh"
        )
    # Keep only what choosing the micro-batch needs; the trainer reads the file again.
    return {"progress": {"micro_batches": saved["progress"].get("micro_batches", [])}}


def check_writable(folder: Path) -> None:
    """Fail now, not after hours of training, when results cannot be written to ``folder``.
    Nothing is created: the check writes a temporary file in the folder, or in its nearest
    existing parent when the folder does not exist yet, and removes it."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as error:
        raise SweepError(
            f"--out {folder}: cannot write there ({error.strerror or error}); "
            "choose another folder with --out"
        ) from None


def check_data_size(spec: SweepSpec, train: TrainData) -> None:
    """Every planned batch needs at least one full step of training data: a split smaller than
    one batch (data.train_examples too small, say) would otherwise train on repeated examples and
    be recorded as an ordinary run."""
    for batch_size in spec.batch_sizes:
        try:
            steps = train.steps_per_epoch(batch_size)
        except ValueError as error:  # a split the stream cannot lay out at this batch
            raise SweepError(
                f"batch {batch_size}: {error}; use smaller --batch-sizes or more training data"
            ) from None
        if not steps >= 1:
            overrides = " ".join(f"data.{k}={v}" for k, v in spec.data_overrides.items())
            raise SweepError(
                f"the training split has less than one batch of {batch_size} "
                f"({steps:.3g} steps per epoch)"
                + (f" with --set {overrides}" if overrides else "")
                + "; use smaller --batch-sizes or more training data"
            )
