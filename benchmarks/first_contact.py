"""Time a new user's first contact: a fresh clone, then the README's setup, main job and tests.

    python benchmarks/first_contact.py                    # writes results/first_contact.json

It clones the repository's committed HEAD into a temporary folder and runs there, one after the
other, exactly the README's commands: ``bin/setup`` (a new ``.venv``), ``bin/reproduce EXP
--preset smoke`` for each experiment, ``bin/reproduce mnist_lstm`` (the main job) and
``bin/test`` (lint, pytest and the speed ratios). Each step's
wall time, exit code, the machine's load average just before it and the last lines of its output
go into one record with the commit, hardware and date; ``python reproduce/report.py --readme``
puts them in the README. A step that fails ends the timing and is recorded as failed.

Times are meaningful only on an idle machine, so the script waits (up to ``--wait`` seconds) for
the 1-minute load average to fall below ``--max-load`` and refuses to start otherwise (exit 2);
the load before each step is recorded so that a reader can judge.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "first_contact.json"
EXPERIMENTS = ("mnist_lstm", "ptb_small", "ptb_large", "gnmt", "imagenet_resnet50")
#: The README's commands, in the order a new user meets them (README, "Two commands"), with each
#: experiment's smoke preset ("runs any experiment in seconds") before the main job.
STEPS = (
    ("setup", ["bin/setup"]),
    *((f"smoke {name}", ["bin/reproduce", name, "--preset", "smoke"]) for name in EXPERIMENTS),
    ("main job", ["bin/reproduce", "mnist_lstm"]),
    ("tests", ["bin/test"]),
)
#: pytest's closing line, e.g. "=== 1100 passed, 6 skipped in 601.20s (0:10:01) ===".
PYTEST_SUMMARY = re.compile(r"^=+ (.*\d+ (?:passed|failed).*) =+$")
OUTPUT_TAIL_LINES = 15


def hardware() -> dict[str, Any]:
    """CPU model, logical cores and memory of this machine (Linux /proc; None elsewhere)."""
    cpu_model = memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return {"cpu_model": cpu_model, "cpu_count": os.cpu_count(), "memory_gib": memory_gib}


def committed_head(repo: Path) -> str:
    """The commit a fresh clone of ``repo`` checks out."""
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def wait_until_idle(max_load: float, wait_seconds: float) -> float | None:
    """The 1-minute load average once it is below ``max_load``, or None after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    while True:
        load = os.getloadavg()[0]
        if load < max_load:
            return load
        if time.monotonic() >= deadline:
            return None
        time.sleep(15)


def new_user_environment() -> dict[str, str]:
    """This process's environment without an active virtualenv or thread settings of ours."""
    environment = dict(os.environ)
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        environment.pop(name, None)
    if "VIRTUAL_ENV" in os.environ:
        venv_bin = str(Path(os.environ["VIRTUAL_ENV"]) / "bin")
        parts = environment.get("PATH", "").split(os.pathsep)
        environment["PATH"] = os.pathsep.join(part for part in parts if part != venv_bin)
    return environment


def run_step(name: str, command: list[str], clone: Path, logs: Path) -> dict[str, Any]:
    """Run one README command in the clone; its time, exit code, load before and output tail."""
    log_file = logs / f"{name.replace(' ', '_')}.log"
    load_before = round(os.getloadavg()[0], 2)
    print(f"[first contact] {name}: {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    with log_file.open("w") as log:
        exit_code = subprocess.run(
            command, cwd=clone, stdout=log, stderr=subprocess.STDOUT, env=new_user_environment()
        ).returncode
    seconds = round(time.monotonic() - started, 1)
    lines = log_file.read_text(errors="replace").splitlines()
    summaries = [match.group(1) for line in lines if (match := PYTEST_SUMMARY.match(line))]
    print(f"[first contact] {name}: exit {exit_code} after {seconds} s", file=sys.stderr)
    return {
        "name": name,
        "command": " ".join(command),
        "seconds": seconds,
        "exit_code": exit_code,
        "load_before": load_before,
        "pytest_summary": summaries[-1] if summaries else None,
        "output_tail": lines[-OUTPUT_TAIL_LINES:],
    }


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="record to write")
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository to clone (its HEAD)")
    parser.add_argument(
        "--max-load", type=float, default=0.5, help="start only below this 1-minute load average"
    )
    parser.add_argument(
        "--wait", type=float, default=600.0, help="seconds to wait for the machine to be idle"
    )
    parser.add_argument("--keep", action="store_true", help="keep the clone and its logs")
    args = parser.parse_args(argv)
    if args.max_load <= 0 or args.wait < 0:
        parser.error("--max-load must be > 0 and --wait >= 0")
    if not (args.repo / ".git").exists():
        parser.error(f"--repo {args.repo}: not a git repository")

    idle_load = wait_until_idle(args.max_load, args.wait)
    if idle_load is None:
        print(
            f"first_contact: the 1-minute load average stayed at or above {args.max_load} for "
            f"{args.wait:.0f} s; times taken now would measure the other work. Stop it, or "
            "raise --max-load (the load is recorded either way).",
            file=sys.stderr,
        )
        return 2
    commit = committed_head(args.repo)
    workdir = Path(tempfile.mkdtemp(prefix="first-contact."))
    clone, logs = workdir / "clone", workdir / "logs"
    logs.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    record: dict[str, Any] = {
        "kind": "first_contact",
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "git_commit": commit,
        "command": " ".join(["python", "benchmarks/first_contact.py", *(argv or sys.argv[1:])]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hardware": hardware(),
        "max_load": args.max_load,
        "steps": [],
    }
    for name, command in STEPS:
        step = run_step(name, command, clone, logs)
        record["steps"].append(step)
        if step["exit_code"] != 0:
            break
    record["complete"] = len(record["steps"]) == len(STEPS) and all(
        step["exit_code"] == 0 for step in record["steps"]
    )
    write_atomically(args.out, record)
    print(f"first_contact: wrote {args.out}", file=sys.stderr)
    if args.keep:
        print(f"first_contact: the clone and its logs are in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if record["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
