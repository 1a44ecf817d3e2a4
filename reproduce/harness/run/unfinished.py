"""Runs that trained but could not be finished here: their state is kept and the user told how
to finish them.

A run whose evaluation raised (status ``evaluation_failed``) is not a result: its record goes to
``<out>/unfinished/NAME.json``, never to ``runs/`` (which reports read), beside its checkpoint in
``checkpoints/``, with the error and the command that finishes it. That command is the run's own
with ``--resume``: the checkpoint of a trained model is evaluated without retraining (a rerun
without ``--resume`` does the same for a trained model), and one stopped by a failed validation
evaluation goes on from that evaluation. The record is removed once the run is recorded.

A record that cannot be written to the output folder is written to its rescue folder
(``rescue.py``); the sweep then stops with one message saying where everything is.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.io import atomic_write_json
from .rescue import Written, rescue_instructions, write_or_rescue

UNFINISHED_FOLDER = "unfinished"


def unfinished_path(out_dir: Path, record_name: str) -> Path:
    return Path(out_dir) / UNFINISHED_FOLDER / record_name


def finish_command(command: Sequence[str]) -> str:
    """The run's command line with ``--resume`` (added when missing)."""
    arguments = list(command)
    if "--resume" not in arguments:
        arguments.append("--resume")
    return shlex.join(["python", *arguments])


def unfinished_record(
    record: Mapping[str, Any],
    evaluation_error: Mapping[str, Any],
    checkpoint: str | None,
    command: Sequence[str],
) -> dict[str, Any]:
    """The record of a run whose evaluation raised: what it trained, why it is not a result, its
    checkpoint and how to finish it."""
    return {
        **record,
        "final": {},
        "evaluation_error": dict(evaluation_error),
        "checkpoint": checkpoint,
        "finish_command": finish_command(command),
    }


def write_record(out_dir: Path, path: Path, record: Mapping[str, Any]) -> Written:
    """Write a record atomically at ``path`` (under ``out_dir``), retried, else rescued."""
    # no warning of its own: the caller raises ResultsRescued, which says where it went
    return write_or_rescue(
        path, lambda target: atomic_write_json(target, record), out_dir, "run record", warn=False
    )


class TrainedWorkKept(Exception):
    """The sweep stopped, every trained run's state kept on disk; the message says where and how
    to finish. Exit code 1."""

    exit_code = 1


class RunsUnfinished(TrainedWorkKept):
    """Runs trained whose evaluation raised; their state is kept."""

    def __init__(self, out_dir: Path, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = list(records)
        count = len(self.records)
        lines = [
            f"{count} run{'s' if count > 1 else ''} trained but an evaluation failed; the trained "
            "state is kept and nothing needs retraining:"
        ]
        for record in self.records:
            error = record["evaluation_error"]
            lines.append(
                f"  {record['method']} b={record['batch_size']} seed={record['seed']}: "
                f"{error['split']} evaluation after step {error['step']}: {error['error']}"
                + (f" ({error['where']})" if error.get("where") else "")
            )
            lines.append(f"    checkpoint {record['checkpoint']}")
        lines.append(f"records of what they trained: {Path(out_dir) / UNFINISHED_FOLDER}")
        lines.append(
            "fix the cause, then finish them (evaluation only, no retraining) with: "
            f"{self.records[0]['finish_command']}"
        )
        super().__init__("\n".join(lines))


class ResultsRescued(TrainedWorkKept):
    """The output folder could not take a trained run's record; it is in a rescue folder. The
    sweep stops: the folder cannot take the next runs' records either."""

    def __init__(self, out_dir: Path, rescued: Written, what: str) -> None:
        assert rescued.rescue is not None
        super().__init__(
            f"cannot write to {out_dir}: the {what} is saved at {rescued.path}; "
            + rescue_instructions(out_dir, rescued.rescue)
        )


def report_stop(error: TrainedWorkKept | OSError) -> int:
    """Print why a sweep stopped with its trained work kept (one message, no traceback) and
    return the exit code: the entry points' handler for TrainedWorkKept and OSError."""
    import sys

    if isinstance(error, TrainedWorkKept):
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"error: {write_failure(error)}", file=sys.stderr)
    return 1


def write_failure(error: OSError) -> str:
    """One line for a write that failed once every trained run was safe (a report, a shared
    record): what could not be written, and that the records are kept."""
    where = f"{error.filename}: " if error.filename else ""
    return (
        f"{where}{error.strerror or error}; every trained run's record or checkpoint written "
        "before it is kept; make the output folder writable and rerun the same command"
    )
