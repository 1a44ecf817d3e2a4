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

from ..core.io import atomic_write

CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (the old checkpoint stays valid until the rename)."""
    atomic_write(path, lambda stream: torch.save({"version": CHECKPOINT_VERSION, **state}, stream))


class CorruptCheckpoint(ValueError):
    """A checkpoint file that cannot be read (truncated, not a torch file, another version)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None when there is none; CorruptCheckpoint (naming the
    file) when it cannot be read."""
    if not Path(path).exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise CorruptCheckpoint(
            path,
            f"not a readable checkpoint ({error.__class__.__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})",
        ) from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise CorruptCheckpoint(path, f"checkpoint version {version} is not {CHECKPOINT_VERSION}")
    return state


def set_aside(path: Path) -> Path:
    """Rename an unusable checkpoint to ``<name>.corrupt-<n>`` (kept for inspection, never
    overwritten) and return the new path."""
    path = Path(path)
    for number in range(1, 10_000):
        aside = path.with_name(f"{path.name}.corrupt-{number}")
        if not aside.exists():
            path.rename(aside)
            return aside
    raise OSError(f"{path}: too many set-aside copies beside it; delete some")


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


#: The signals that stop a run cleanly: a checkpoint is written, then Preempted is raised.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """Raised after a checkpoint was written because the process was asked to stop (SIGTERM from
    a scheduler or a preemptible VM, SIGINT from Ctrl-C)."""

    def __init__(self, message: str, signal_number: int = signal.SIGTERM) -> None:
        super().__init__(message)
        self.signal_number = int(signal_number)

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by that signal: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signal_number


@dataclass
class CheckpointPolicy:
    """When to checkpoint: every ``every_steps`` steps and/or ``every_seconds`` of wall time, and
    when SIGTERM or SIGINT arrives (a preemptible VM's or a scheduler's notice, or Ctrl-C)."""

    path: Path | None
    every_steps: int | None = None
    every_seconds: float | None = None
    #: The output folder ``path`` lies in: a checkpoint that cannot be written there is written
    #: to that folder's rescue folder instead (``rescue.write_or_rescue``), and later ones too.
    out_dir: Path | None = None
    #: The rescue folder the checkpoint went to, once one had to be used.
    rescued_to: Path | None = None
    _last_save: float = field(default_factory=time.monotonic)
    _stop_signal: int | None = None

    def save(self, state: dict[str, Any]) -> Path:
        """Write the checkpoint (``save_checkpoint``), retried and then rescued when the output
        folder cannot take it; returns where it is."""
        assert self.path is not None
        if self.out_dir is None:
            save_checkpoint(self.path, state)
            return self.path
        from .rescue import write_or_rescue

        written = write_or_rescue(
            self.path, lambda path: save_checkpoint(path, state), self.out_dir, "checkpoint"
        )
        if written.rescue is not None:  # later checkpoints go straight there
            self.path, self.out_dir, self.rescued_to = written.path, None, written.rescue
        return written.path

    def due(self, step: int) -> bool:
        if self.path is None:
            return False
        if self._stop_signal is not None:
            return True
        if self.every_steps and step % self.every_steps == 0:
            return True
        return bool(self.every_seconds and time.monotonic() - self._last_save >= self.every_seconds)

    def saved(self) -> None:
        self._last_save = time.monotonic()
        if self._stop_signal is not None:
            name = signal.Signals(self._stop_signal).name
            raise Preempted(f"stopped by {name}; checkpoint at {self.path}", self._stop_signal)

    def __enter__(self) -> CheckpointPolicy:
        self._previous: dict[int, Any] = {}
        if self.path is not None:
            for number in STOP_SIGNALS:
                try:
                    self._previous[number] = signal.signal(number, self._on_signal)
                except ValueError:  # not the main thread: no signal handling
                    break
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without waiting for the step
        self._stop_signal = signum
