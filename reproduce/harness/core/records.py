"""The run record's file format: one JSON file per run (``runs/<method>_b<batch>_s<seed>.json``),
schema version 1, documented in results/README.md. Runs write records (``run/provenance.py`` adds
where each came from) and reports read them (``report/record_files.py`` validates them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def record_name(method: str, batch_size: int, seed: int) -> str:
    return f"{method}_b{batch_size}_s{seed}.json"


class RecordError(ValueError):
    """A run record that cannot be read (damaged by hand or by another program)."""


def read_record(path: Path) -> dict[str, Any] | None:
    """A finished record, or None if there is none at ``path``; RecordError naming the file when
    it is not a JSON object (records are written atomically, so only an outside edit does that)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(
            f"{path}: not a readable run record ({error}); delete it to train that run again"
        ) from None
    if not isinstance(record, dict):
        raise RecordError(f"{path}: not a run record (a JSON object); delete it to train again")
    return record
