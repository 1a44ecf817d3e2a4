"""Where a run came from, as its record says: versions, hardware, commit, date and command
(``environment``), and the key of the configuration that determines its result (``config_key``).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]
RECORDED_PACKAGES = (
    "torch",
    "numpy",
    "pytorch-optimizer",
    "datasets",
    "tabulate",
    "matplotlib",
    "torch-xla",
    "sacrebleu",
    "sentencepiece",
)


@functools.cache
def git_state() -> dict[str, Any]:
    """The commit the code was run from, and whether the code (not results/) had local edits.

    Read once per process, when the sweep starts: a commit made while a long sweep runs must not
    be credited with results of the code loaded before it.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def environment(device_info: dict[str, Any], command: list[str]) -> dict[str, Any]:
    """Versions, hardware, commit, date and the command line of a run."""
    packages = {}
    for name in RECORDED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,  # with the build tag (+cpu, +cu128), unlike the metadata
        "packages": packages,
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        **device_info,
        **git_state(),
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "command": " ".join([Path(sys.executable).name, *command]),
    }


def config_key(parts: dict[str, Any]) -> str:
    """A stable hash of what determines a run's result (to skip runs already done)."""
    canonical = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
