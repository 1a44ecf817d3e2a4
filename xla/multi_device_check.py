"""Check multi-device XLA training without a TPU: N XLA devices (PJRT's CPU client, one process
with N replica threads, as xla/launch.py starts them) must follow the loss curve of 1 XLA device
at the same global batch, and only replica 0 may write.

    PJRT_DEVICE=CPU .venv-xla/bin/python xla/multi_device_check.py [--devices 2]

Both runs go through the real command line (reproduce/run.py ... --device tpu), the N-device one
under ``CPU_NUM_DEVICES=N python xla/launch.py``; the records they write are compared. The same
comparison as tests/test_distributed.py makes for 2 gloo processes. Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_arguments(batch_size: int, micro_batch: int, epochs: int) -> list[str]:
    """reproduce/run.py arguments: mnist_lstm's smoke preset, one DATE run, fixed micro-batch."""
    return [
        "mnist_lstm", "--preset", "smoke", "--methods", "date",
        "--batch-sizes", str(batch_size), "--quiet", "--device", "tpu",
        "--set", f"run.micro_batch_size={micro_batch}", "--set", f"epochs={epochs}",
    ]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2, help="XLA CPU devices of the second run")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch of both runs")
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    # float32 everywhere; the slices are summed in another order, so bit equality is not expected.
    parser.add_argument("--rtol", type=float, default=1e-4)
    # One of the smoke preset's 256 test examples flipping class moves accuracy by 0.0039.
    parser.add_argument("--metric-atol", type=float, default=5e-3)
    parser.add_argument(
        "--out", type=Path, help="keep both runs' results here (a rerun reuses finished records)"
    )
    return parser.parse_args(argv)


def compare_records(
    one: dict[str, Any],
    many: dict[str, Any],
    devices: int,
    rtol: float,
    metric_atol: float,
) -> tuple[list[list[Any]], list[str]]:
    """Per-step loss rows (step, lr, loss 1 device, loss N devices, rel diff) and the problems
    found (an empty list when the N-device run matches the 1-device run)."""
    problems = []
    if (one.get("world_size"), many.get("world_size")) != (1, devices):
        problems.append(f"world sizes {one.get('world_size')} and {many.get('world_size')}")
    if one["total_steps"] != many["total_steps"]:
        problems.append(f"total steps {one['total_steps']} vs {many['total_steps']}")
    if one["curves"]["lr"] != many["curves"]["lr"]:
        problems.append("learning-rate curves differ")
    if one["status"] != "ok" or many["status"] != "ok":
        problems.append(f"status {one['status']} vs {many['status']}")
    rows = []
    losses = zip(
        one["curves"]["step"],
        one["curves"]["lr"],
        one["curves"]["loss"],
        many["curves"]["loss"],
        strict=False,  # a shorter curve is reported below
    )
    for step, lr, a, b in losses:
        relative = abs(a - b) / abs(a) if a else math.inf
        rows.append([step, f"{lr:.4g}", f"{a:.7f}", f"{b:.7f}", f"{relative:.1e}"])
        if not (math.isfinite(b) and relative <= rtol):
            rows[-1].append("MISMATCH")
            problems.append(f"step {step}: loss {b} vs {a}")
    if len(one["curves"]["loss"]) != len(many["curves"]["loss"]):
        problems.append("loss curves have different lengths")
    for name, value in one["final"].items():
        other = many["final"].get(name, math.nan)
        if not abs(other - value) <= metric_atol:
            problems.append(f"final {name}: {other} vs {value}")
    return rows, problems


def train(label: str, command: list[str], env: dict[str, str], out: Path) -> float:
    """Run ``command`` (writing to ``out``) and return its wall time; exit on failure."""
    started = time.perf_counter()
    result = subprocess.run(
        [*command, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(f"{label}: exit code {result.returncode}\n{result.stderr[-4000:]}", file=sys.stderr)
        sys.exit(1)
    return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tabulate import tabulate

    env = {**os.environ, "PJRT_DEVICE": os.environ.get("PJRT_DEVICE", "CPU")}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("CPU_NUM_DEVICES", None)
    arguments = run_arguments(args.batch_size, args.micro_batch, args.epochs)
    record = Path("runs") / f"date_b{args.batch_size}_s0.json"
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        one_seconds = train(
            "1 XLA device", [sys.executable, "reproduce/run.py", *arguments], env, out / "one"
        )
        many_seconds = train(
            f"{args.devices} XLA devices",
            [sys.executable, "xla/launch.py", "reproduce/run.py", *arguments],
            {**env, "CPU_NUM_DEVICES": str(args.devices)},
            out / "many",
        )
        one = json.loads((out / "one" / record).read_text(encoding="utf-8"))
        many = json.loads((out / "many" / record).read_text(encoding="utf-8"))
        written = sorted(path.name for path in (out / "many" / "runs").iterdir())

    rows, problems = compare_records(one, many, args.devices, args.rtol, args.metric_atol)
    if written != [record.name]:
        problems.append(f"the {args.devices}-device run wrote {written}, not one record")
    print(
        f"mnist_lstm smoke, DATE, global batch {args.batch_size}, micro-batch {args.micro_batch}, "
        f"{args.epochs} epochs, PJRT_DEVICE={env['PJRT_DEVICE']}\n"
        f"1 XLA device: accumulation {one['accumulation_steps']}, {one_seconds:.0f} s wall; "
        f"{args.devices} XLA devices: accumulation {many['accumulation_steps']} per replica, "
        f"{many_seconds:.0f} s wall\n"
    )
    largest = max((float(row[4]) for row in rows), default=math.nan)
    print(f"Step losses (rtol {args.rtol:g}; largest relative difference {largest:.1e}):")
    headers = ["step", "lr", "1 device", f"{args.devices} devices", "rel diff"]
    print(tabulate(rows, headers=headers, disable_numparse=True))
    print(f"\nFinal test metrics (atol {args.metric_atol:g}):")
    print(
        tabulate(
            [
                [name, f"{v:.7f}", f"{many['final'].get(name, math.nan):.7f}"]
                for name, v in one["final"].items()
            ],
            headers=["metric", "1 device", f"{args.devices} devices"],
            disable_numparse=True,
        )
    )
    for problem in problems:
        print(f"MISMATCH: {problem}")
    print(
        f"\n{args.devices} XLA devices match 1 XLA device"
        if not problems
        else f"\n{args.devices} XLA devices DIFFER from 1 XLA device"
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
