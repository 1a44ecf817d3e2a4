"""Writes that never lose a trained run: retried, then redirected to a named rescue folder.

A checkpoint or a record that cannot be written where it belongs (the output folder became
read-only, its disk filled up, a network mount went away, the folder was replaced) is written
again after a pause or two, since such faults are often brief; then, keeping its path relative to
the output folder, under the rescue folder of that output folder:
``$DATE_REPRO_RESCUE/<out name>-<hash of its absolute path>/`` (default
``~/.cache/date-repro/rescue``), or failing that under the system's temporary folder. The caller
is told where it went, so that the user can move it back (``rescue_instructions``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Environment variable naming the rescue root (default ``~/.cache/date-repro/rescue``).
RESCUE_ENV = "DATE_REPRO_RESCUE"
#: Pauses before the second and third attempt at the intended path, in seconds: long enough for
#: a brief fault (a network mount's hiccup) to pass, short next to any training run.
RETRY_DELAYS = (1.0, 5.0)


class NothingWritable(OSError):
    """Neither the intended path nor any rescue folder could be written."""


def rescue_roots() -> list[Path]:
    """Where rescued files go, in order of preference."""
    configured = os.environ.get(RESCUE_ENV)
    roots = [Path(configured)] if configured else []
    roots.append(Path.home() / ".cache" / "date-repro" / "rescue")
    roots.append(Path(tempfile.gettempdir()) / "date-repro-rescue")
    return roots


def rescue_folder(out_dir: Path, root: Path | None = None) -> Path:
    """The rescue folder of ``out_dir``: named after it, and unique to its absolute path."""
    absolute = Path(out_dir).absolute()
    digest = hashlib.sha256(str(absolute).encode()).hexdigest()[:8]
    return (root or rescue_roots()[0]) / f"{absolute.name or 'out'}-{digest}"


def describe(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


@dataclass(frozen=True)
class Written:
    """Where a file was written: ``path``, inside ``rescue`` (a rescue folder) or not."""

    path: Path
    rescue: Path | None = None


def write_or_rescue(
    path: Path,
    write: Callable[[Path], None],
    out_dir: Path,
    what: str,
    retry_delays: tuple[float, ...] | None = None,
    warn: bool = True,
) -> Written:
    """``write(path)``; on OSError, again after each of ``retry_delays``; then ``write`` to the
    same path relative to ``out_dir`` under a rescue folder. Says where it wrote (with ``warn``,
    one warning line on stderr when that is a rescue folder); NothingWritable (one line naming
    every place tried) if nothing could be written."""
    delays = RETRY_DELAYS if retry_delays is None else retry_delays
    error: OSError | None = None
    for delay in (0.0, *delays):
        if delay:
            time.sleep(delay)
        try:
            write(path)
            return Written(Path(path))
        except OSError as failure:
            error = failure
    assert error is not None
    try:
        relative = Path(path).absolute().relative_to(Path(out_dir).absolute())
    except ValueError:
        relative = Path(Path(path).name)
    tried = [f"{path} ({describe(error)})"]
    for root in rescue_roots():
        folder = rescue_folder(out_dir, root)
        target = folder / relative
        try:
            write(target)
        except OSError as failure:
            tried.append(f"{target} ({describe(failure)})")
            continue
        if warn:
            print(
                f"warning: cannot write the {what} to {path} ({describe(error)}, "
                f"{1 + len(delays)} attempts); written to {target} instead",
                file=sys.stderr,
                flush=True,
            )
        return Written(target, folder)
    raise NothingWritable(f"the {what} could not be written anywhere: tried {'; '.join(tried)}")


def rescue_instructions(out_dir: Path, folder: Path) -> str:
    """How to bring the files rescued in ``folder`` back into ``out_dir``."""
    return (
        f"once {out_dir} is writable again, copy the rescued files back (their paths under "
        f"{folder} are their paths under {out_dir}): cp -r {folder}/. {out_dir}/ and rerun the "
        "same command (add --resume to continue a rescued checkpoint)"
    )
