"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint holds state_dicts (never pickled modules), the step, the curves so far and the RNG
states; the data order is a function of (seed, step), so the step is enough to restore it. It is
written atomically and read with ``weights_only=True``, which refuses arbitrary pickled code.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from .io import atomic_write

CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (the old checkpoint stays valid until the rename)."""
    atomic_write(path, lambda stream: torch.save({"version": CHECKPOINT_VERSION, **state}, stream))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none."""
    if not Path(path).exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}; "
            "delete it to start the run afresh"
        )
    return state


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Preempted(Exception):
    """Raised after a checkpoint was written because the process was asked to stop (SIGTERM)."""


@dataclass
class CheckpointPolicy:
    """When to checkpoint: every ``every_steps`` steps and/or ``every_seconds`` of wall time, and
    when SIGTERM arrives (a preemptible VM's or a scheduler's notice)."""

    path: Path | None
    every_steps: int | None = None
    every_seconds: float | None = None
    _last_save: float = field(default_factory=time.monotonic)
    _stop_requested: bool = False

    def due(self, step: int) -> bool:
        if self.path is None:
            return False
        if self._stop_requested:
            return True
        if self.every_steps and step % self.every_steps == 0:
            return True
        return bool(self.every_seconds and time.monotonic() - self._last_save >= self.every_seconds)

    def saved(self) -> None:
        self._last_save = time.monotonic()
        if self._stop_requested:
            raise Preempted(f"stopped by SIGTERM; checkpoint at {self.path}")

    def __enter__(self) -> CheckpointPolicy:
        self._previous = None
        if self.path is not None:
            try:
                self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            except ValueError:  # not the main thread: no signal handling
                self._previous = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True
