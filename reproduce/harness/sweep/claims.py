"""Claims: one worker trains a run, when the runs of a sweep are spread over processes, machines
or scheduler jobs that share one ``--out`` folder.

A claim is a file ``OUT/claims/<run>.<generation>.claim`` created by hard-linking a complete
temporary file to that name, which is atomic and exclusive on local file systems and on NFS: of
two workers creating the same name, exactly one succeeds, and the file is never seen empty. It
holds its owner (host, pid, the pid's namespace and start time) and its modification time is a
heartbeat, refreshed by a thread of the owner.

A claim is stale when its heartbeat is older than ``stale_seconds``, or when its owner ran on
this host (same pid namespace) and that process is gone. A stale claim of generation g is broken
by creating generation g + 1, again exclusively: two workers that judged the same claim
stale cannot both win, and none can take the name of a live claim. (Renaming the stale file
away and re-creating the same name, the usual way, has a window in which a second breaker that
read the same stale claim renames away the first breaker's fresh one.) Lower generations are
removed only when the run is released.

Ages are measured against the folder's own clock (the mtime of a file just written there), not
the worker's, so that clocks that differ between an NFS server and its clients do not make a
live claim look stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..run.distributed import DistributedContext
from .planning import PlannedRun
from .spec import SweepSpec

CLAIMS_FOLDER = "claims"
#: How often an owner refreshes its claim's heartbeat.
HEARTBEAT_SECONDS = 30.0
#: A claim whose heartbeat is older than this is stale: 20 missed heartbeats, so that a slow
#: file system or a paused VM is not mistaken for a dead worker.
STALE_SECONDS = 600.0


def _pid_namespace() -> int | None:
    """The inode of this process's pid namespace (Linux): pids are comparable only within it."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _process_start(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of process ``pid`` from /proc, or None
    when there is no such process (or no /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command name) "
    return fields[0], int(fields[19])


def owner_info() -> dict[str, Any]:
    """Who holds a claim made by this process."""
    pid = os.getpid()
    start = _process_start(pid)
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_namespace": _pid_namespace(),
        "process_start": start[1] if start else None,
        "claimed_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def process_gone(owner: dict[str, Any]) -> bool:
    """Whether ``owner``'s process is known to be gone: it ran on this host, in this pid
    namespace, and its pid is free, a zombie, or reused by a process started at another time.
    On another host nothing is known (False): the heartbeat decides there."""
    if owner.get("host") != socket.gethostname() or owner.get("pid_namespace") is None:
        return False
    if owner.get("pid_namespace") != _pid_namespace():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    state = _process_start(pid)
    if state is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False  # no /proc: alive as far as kill(0) can tell
    status, started = state
    return status == "Z" or (
        owner.get("process_start") is not None and started != owner["process_start"]
    )


def folder_time(folder: Path) -> float:
    """The current time by the clock of the file system holding ``folder``."""
    handle, path = tempfile.mkstemp(dir=folder, prefix=".clock-")
    try:
        return os.fstat(handle).st_mtime
    finally:
        os.close(handle)
        os.unlink(path)


def _create_with_content(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text``, only if it does not exist; False if it does. The text is
    written to a temporary file first and hard-linked to ``path`` (atomic and exclusive, on NFS
    too), so a claim never exists empty: a worker killed while claiming leaves either no claim
    or a complete one whose dead owner is recognized at once. On NFS a link whose reply was
    lost can fail after it succeeded; the temporary's link count then tells."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return os.stat(temporary).st_nlink == 2
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            return _create_exclusive(path, text)  # a file system without hard links
        return True
    finally:
        os.unlink(temporary)


#: errno values of a file system that does not support hard links (some FUSE and SMB mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV}


def _create_exclusive(path: Path, text: str) -> bool:
    """Fallback: ``O_CREAT | O_EXCL``, then the text (a claim is briefly empty; one whose writer
    was killed then is judged by its heartbeat, after ``STALE_SECONDS``)."""
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    return True


@dataclass(frozen=True)
class Holder:
    """The owner of a live claim, as read from its file."""

    owner: dict[str, Any]
    generation: int

    def describe(self) -> str:
        host, pid = self.owner.get("host", "?"), self.owner.get("pid", "?")
        since = self.owner.get("claimed_at")
        return f"{host} pid {pid}" + (f" since {since}" if since else "")


class Claim:
    """The claim on one run (``name``) in ``folder``; ``acquire`` it, ``release`` it when done.

    While held, a daemon thread refreshes the heartbeat every ``heartbeat_seconds`` and notes
    when the claim was lost (its file removed, or a higher generation created by a worker that
    judged it stale): ``lost`` then says so, and the result must not be written.
    """

    def __init__(
        self,
        folder: Path,
        name: str,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self.folder = Path(folder)
        self.name = name
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.generation: int | None = None
        self.holder: Holder | None = None  # who holds it, when acquire() failed
        self.broke: str | None = None  # why the claim acquire() broke was stale
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, generation: int) -> Path:
        return self.folder / f"{self.name}.{generation}.claim"

    def generations(self) -> list[int]:
        """Generations of this run's claim files present, lowest first."""
        found = []
        prefix, suffix = f"{self.name}.", ".claim"
        # A folder that cannot be read (gone, replaced, unmounted) holds no claim anyone can see.
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                middle = entry.name[len(prefix) : -len(suffix)]
                matches = entry.name.startswith(prefix) and entry.name.endswith(suffix)
                if matches and middle.isdigit():
                    found.append(int(middle))
        return sorted(found)

    @property
    def held(self) -> bool:
        return self.generation is not None and not self._lost.is_set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def stale_reason(self, generation: int) -> str | None:
        """Why the claim of ``generation`` is stale, or None when it is live."""
        path = self.path(generation)
        try:
            modified = path.stat().st_mtime
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return "released"
        try:
            owner = json.loads(text)
        except json.JSONDecodeError:
            owner = {}  # unreadable (damaged, or an old version's partial write): heartbeat decides
        if not isinstance(owner, dict):
            owner = {}
        age = folder_time(self.folder) - modified
        who = Holder(owner, generation).describe()
        if age > self.stale_seconds:
            return f"held by {who}, no heartbeat for {age:.0f} s"
        if process_gone(owner):
            return f"held by {who}, a process that is gone"
        self.holder = Holder(owner, generation)
        return None

    def acquire(self) -> bool:
        """Take the claim if it is free or stale; False (``holder`` says who) when it is live."""
        if self.generation is not None:
            raise RuntimeError(f"claim {self.name} is already held by this worker")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.holder = self.broke = None
        present = self.generations()
        target = 0
        if present:
            top = present[-1]
            reason = self.stale_reason(top)
            if reason is None:
                return False
            target = top + 1
            self.broke = None if reason == "released" else reason
        if not _create_with_content(self.path(target), json.dumps(owner_info())):
            return False  # another worker claimed (or broke) it first
        self.generation = target
        self._lost.clear()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._beat, name=f"claim-heartbeat-{self.name}", daemon=True
        )
        self._thread.start()
        return True

    def check(self) -> bool:
        """Refresh the heartbeat now; False (and ``lost``) if the claim is no longer ours."""
        if self.generation is None:
            return False
        try:
            os.utime(self.path(self.generation))
        except FileNotFoundError:
            self._lost.set()
        except OSError:
            # The folder cannot be touched (read-only, replaced, unmounted): no other worker can
            # take the claim over through it either, so it is not lost; the results' own writes
            # find the fault and rescue them (rescue.py).
            pass
        if any(g > self.generation for g in self.generations()):
            self._lost.set()
        return not self._lost.is_set()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            if not self.check():
                return

    def release(self) -> None:
        """Give the claim up: stop the heartbeat, remove this generation's file and the stale
        lower ones it replaced (never a higher one: that belongs to whoever broke ours)."""
        if self.generation is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for generation in self.generations():
            if generation <= self.generation:
                with contextlib.suppress(OSError):  # one it cannot remove goes stale
                    self.path(generation).unlink()
        self.generation = None
        self._thread = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@contextlib.contextmanager
def held(folder: Path, name: str, **timing: float) -> Iterator[Claim]:
    """``with held(folder, name) as claim:`` acquire (``claim.held`` says whether it was) and
    release at the end."""
    claim = Claim(folder, name, **timing)
    claim.acquire()
    try:
        yield claim
    finally:
        claim.release()


def claim_run(spec: SweepSpec, run: PlannedRun, context: DistributedContext) -> Claim | None:
    """The claim on ``run`` (rank 0 takes it for every rank), or None while a live worker holds
    it; the claim's ``holder`` says who, on rank 0."""
    claim = Claim(spec.out_dir / CLAIMS_FOLDER, Path(run.name).stem)
    acquired = context.broadcast_int(int(claim.acquire()) if context.is_main else 0)
    if not acquired:
        claim.release()
        return None
    return claim


def claim_holder(claim_folder: Path, run: PlannedRun) -> str:
    """Who holds ``run``'s claim, for a log line."""
    claim = Claim(claim_folder, Path(run.name).stem)
    generations = claim.generations()
    if generations and claim.stale_reason(generations[-1]) is None and claim.holder:
        return claim.holder.describe()
    return "another worker"
