"""Run a reproduce/ script on every XLA device of this host, one data-parallel replica each.

    PJRT_DEVICE=TPU python xla/launch.py reproduce/run.py EXPERIMENT --device tpu [ARGS ...]

The torchrun of the Cloud TPU path: ``torch_xla.launch`` starts the replicas the way PJRT lays
them out (TPU v2/v3: one process per chip, one thread per core, so 8 replicas on a v3-8; TPU v4
and later: one process per chip; PJRT's CPU client: one process with CPU_NUM_DEVICES threads).
Each replica runs the script as ``python SCRIPT ARGS`` would, and the harness finds its rank and
the world size in the XLA runtime (reproduce/harness/run/distributed.py, ``XlaReplicas``).

On a pod slice, run the same command on every host (``gcloud compute tpus tpu-vm ssh
--worker=all``): the world is then every core of the slice. Only replica 0 writes and prints.
Exit status: the script's, or 1 when a replica raised (the whole job stops then: the others
would wait for it in their next collective forever).
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import TextIO

USAGE = "usage: python xla/launch.py SCRIPT --device tpu [ARGS ...]"


class _ReplicaStdout:
    """stdout that stays silent in the threads of replicas other than 0 (threads of a process
    share sys.stdout, so redirecting it per replica is not possible)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.local = threading.local()

    def write(self, text: str) -> int:
        if getattr(self.local, "silent", False):
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name: str):  # flush, isatty, encoding, fileno ...
        return getattr(self.stream, name)


def check_arguments(argv: list[str]) -> str | None:
    """What is wrong with ``argv`` (SCRIPT ARGS), or None. Every replica must train on its own
    XLA device: without ``--device tpu`` each would run the whole job on the CPU."""
    if not argv or argv[0].startswith("-"):
        return USAGE
    if not Path(argv[0]).is_file():
        return f"{argv[0]}: no such script\n{USAGE}"
    arguments = argv[1:]
    devices = [
        arguments[index + 1] if item == "--device" and index + 1 < len(arguments) else None
        for index, item in enumerate(arguments)
        if item == "--device"
    ] + [item.split("=", 1)[1] for item in arguments if item.startswith("--device=")]
    if devices != ["tpu"]:
        return f"pass --device tpu once: every replica trains on its own XLA device\n{USAGE}"
    return None


def replica(index: int, script: str, arguments: list[str]) -> None:
    """One replica (``index``: its global ordinal): run ``script`` as ``__main__``."""
    if not isinstance(sys.stdout, _ReplicaStdout):
        with _INSTALL_LOCK:
            if not isinstance(sys.stdout, _ReplicaStdout):
                sys.stdout = _ReplicaStdout(sys.stdout)
    sys.stdout.local.silent = index != 0
    sys.argv = [script, *arguments]  # the same in every thread of the process
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    except BaseException:
        # An exception would reach the launcher only once every replica ended, and the others
        # are waiting for this one in a collective: end the whole process now.
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    finally:
        sys.stdout.flush()


_INSTALL_LOCK = threading.Lock()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    problem = check_arguments(argv)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import torch_xla

    try:
        torch_xla.launch(replica, args=(argv[0], argv[1:]))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except Exception as error:  # a replica's process ended abruptly (see its stderr above)
        print(f"error: the XLA replicas failed: {error!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
