"""Atomic file writes: a reader never sees a half-written result or checkpoint."""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, fsync, then rename.

    os.replace is atomic on POSIX and Windows, so ``path`` holds either the old or the new
    content, never a mix, even if the process is killed mid-way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; give it the permissions of any file the user creates
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (os.umask can only be read by setting it, so set it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def strict_json_value(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) replaced by None (JSON null), so the
    output is JSON that every parser reads, not Python's dialect with bare NaN/Infinity. A
    record that held such a number says why in its own fields (a divergence reason)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(item) for item in value]
    return value


def atomic_write_json(path: Path, data: Any) -> None:
    text = json.dumps(strict_json_value(data), indent=1, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


#: A temporary file of an atomic write older than this was left by a killed writer: a write
#: itself takes milliseconds, so the margin is wide even on a slow shared disk.
STALE_TEMPORARY_SECONDS = 60.0


def remove_stale_temporaries(folder: Path, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
    """Delete the ``.NAME.*.tmp`` files an atomic write left in ``folder`` when its process was
    killed before the rename (they are never read as results); return how many."""
    removed = 0
    now = time.time()
    for path in Path(folder).glob(".*.tmp"):
        try:
            if now - path.stat().st_mtime > older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another process removed or renamed it meanwhile
            continue
    return removed
