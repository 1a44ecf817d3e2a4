"""Check the Cloud TPU path without a TPU: the suite's own trainer on the XLA device must give the
same step losses and final metrics as on plain CPU, for the same seed, data and micro-batch.

Run inside .venv-xla (built by xla/setup_env.sh), with PJRT's CPU client standing in for a TPU:

    PJRT_DEVICE=CPU .venv-xla/bin/python xla/smoke.py

Three XLA runs follow the CPU one: a cold run (it pays for graph compilation), a warm run (graphs
cached; it also writes a checkpoint half-way), and a run resumed from that checkpoint, which must
end where the warm run ended. Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Measured:
    """One training run with its wall time and XLA graph counters (None on plain CPU)."""

    label: str
    result: Any  # reproduce.harness.run.trainer.RunResult
    wall_seconds: float
    compiles: int | None = None
    executions: int | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="mnist_lstm")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    # Smaller than the smoke preset's batch (32), so gradient accumulation is on the tested path.
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="losses compared (default: all)")
    # float32 on both sides; XLA fuses and reorders reductions, so bit equality is not expected.
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-6)
    # One of the smoke preset's 256 test examples flipping class moves accuracy by 0.0039.
    parser.add_argument("--metric-atol", type=float, default=5e-3)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--no-resume-check", action="store_true")
    return parser.parse_args(argv)


def xla_counters() -> tuple[int, int]:
    """(graphs compiled, graphs executed) so far in this process."""
    import torch_xla.debug.metrics as metrics

    def count(name: str) -> int:
        data = metrics.metric_data(name)
        return int(data[0]) if data else 0

    return count("CompileTime"), count("ExecuteTime")


def timed_train(label: str, device: Any, **train_kwargs: Any) -> Measured:
    from reproduce.harness.run import trainer

    is_xla = device.kind == "tpu"
    before = xla_counters() if is_xla else (0, 0)
    started = time.perf_counter()
    result = trainer.train(device=device, progress=False, **train_kwargs)
    device.synchronize()
    wall = time.perf_counter() - started
    if not is_xla:
        return Measured(label, result, wall)
    after = xla_counters()
    return Measured(label, result, wall, after[0] - before[0], after[1] - before[1])


def losses_agree(
    reference: list[float], other: list[float], steps: int, rtol: float, atol: float
) -> tuple[list[list[Any]], bool]:
    """Table rows (step, reference, other, abs diff, rel diff) and whether all are close."""
    rows, agree = [], len(other) >= steps and len(reference) >= steps
    for step in range(min(steps, len(reference), len(other))):
        a, b = reference[step], other[step]
        diff = abs(a - b)
        close = math.isfinite(b) and diff <= atol + rtol * abs(a)
        agree = agree and close
        relative = diff / abs(a) if a else math.inf
        rows.append([step, f"{a:.7f}", f"{b:.7f}", f"{diff:.2e}", f"{relative:.2e}"])
        if not close:
            rows[-1].append("MISMATCH")
    return rows, agree


def metrics_agree(
    reference: Mapping[str, float], other: Mapping[str, float], atol: float
) -> tuple[list[list[Any]], bool]:
    rows, agree = [], set(reference) == set(other)
    for name in sorted(reference):
        a, b = reference[name], other.get(name, math.nan)
        close = abs(a - b) <= atol
        agree = agree and close
        rows.append(
            [name, f"{a:.6f}", f"{b:.6f}", f"{abs(a - b):.2e}", "" if close else "MISMATCH"]
        )
    return rows, agree


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The CPU client is the default here: this script is the CPU stand-in for a TPU. An explicit
    # PJRT_DEVICE (TPU on a TPU VM) is kept, though the tolerances are meant for CPU vs CPU.
    os.environ.setdefault("PJRT_DEVICE", "CPU")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the suite's packages, even without the editable install
    import torch
    from tabulate import tabulate

    from reproduce.harness.run import registry
    from reproduce.harness.run.checkpoint import CheckpointPolicy
    from reproduce.harness.run.devices import resolve_device

    experiment = registry.get_experiment(args.experiment)
    preset = experiment.presets[args.preset]
    recipe = experiment.recipe_for(args.preset)
    # The same merge of defaults and preset as SweepSpec.model_config / data_config.
    model_config = {**experiment.model_defaults, **preset.model}
    data_config = {**experiment.data_defaults, **preset.data}
    data = experiment.build_data("local", args.data_dir, data_config)
    common = {
        "experiment": experiment,
        "recipe": recipe,
        "data": data,
        "model_config": model_config,
        "seed": args.seed,
        "micro_batch_size": args.micro_batch,
        "evals_per_epoch": preset.evals_per_epoch,
        "precision": args.precision,
    }

    xla = resolve_device("tpu")
    import torch_xla

    print(
        f"torch {torch.__version__}, torch_xla {torch_xla.__version__}, "
        f"PJRT_DEVICE={os.environ['PJRT_DEVICE']}, XLA device {xla.torch_device}, "
        f"{experiment.name}/{args.preset}: batch {recipe.batch_size}, "
        f"micro-batch {args.micro_batch}, {args.precision}, seed {args.seed}"
    )

    runs = [timed_train("cpu", resolve_device("cpu"), **common)]
    runs.append(timed_train("xla cold", xla, **common))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "xla.ckpt"
        half = max(1, runs[0].result.total_steps // 2)
        policy = CheckpointPolicy(path=path, every_steps=half)
        runs.append(timed_train("xla warm", xla, checkpoint=policy, **common))
        if not args.no_resume_check:
            resumed = CheckpointPolicy(path=path, every_steps=half)
            runs.append(timed_train("xla resumed", xla, checkpoint=resumed, resume=True, **common))

    cpu, cold = runs[0].result, runs[1].result
    steps = args.steps or cpu.total_steps
    ok = True
    for run in runs[1:]:
        if run.result.status != cpu.status:
            print(f"{run.label}: status {run.result.status!r}, cpu {cpu.status!r}: MISMATCH")
            ok = False

    rows, agree = losses_agree(
        cpu.progress.curves["loss"], cold.progress.curves["loss"], steps, args.rtol, args.atol
    )
    ok = ok and agree
    print(f"\nStep losses, cpu vs xla (rtol {args.rtol:g}, atol {args.atol:g}):")
    print(tabulate(rows, headers=["step", "cpu loss", "xla loss", "abs diff", "rel diff"]))

    rows, agree = metrics_agree(cpu.final, cold.final, args.metric_atol)
    ok = ok and agree
    print(f"\nFinal test metrics (atol {args.metric_atol:g}):")
    print(tabulate(rows, headers=["metric", "cpu", "xla", "abs diff", ""]))

    # Same device, same graphs: the warm and resumed runs must repeat the cold one.
    for run in runs[2:]:
        _, same_losses = losses_agree(
            cold.progress.curves["loss"], run.result.progress.curves["loss"], steps, 0, 0
        )
        _, same_metrics = metrics_agree(cold.final, run.result.final, 0.0)
        verdict = "identical" if same_losses and same_metrics else "DIFFERS"
        print(f"{run.label} vs xla cold: losses and final metrics {verdict}")
        ok = ok and same_losses and same_metrics

    print("\nWall times (train s: the trainer's own step timer; graphs: XLA compiles/executions):")
    print(
        tabulate(
            [
                [
                    run.label,
                    f"{run.wall_seconds:.2f}",
                    f"{run.result.progress.train_seconds:.2f}",
                    len(run.result.progress.curves["loss"]) - (run.result.resumed_from_step or 0),
                    "" if run.compiles is None else run.compiles,
                    "" if run.executions is None else run.executions,
                ]
                for run in runs
            ],
            headers=["run", "wall s", "train s", "steps", "compiles", "executions"],
        )
    )
    import torch_xla.debug.metrics as metrics

    fallbacks = metrics.executed_fallback_ops()
    print(f"\nops that fell back to CPU on the XLA device: {', '.join(fallbacks) or 'none'}")
    print("\nXLA matches CPU" if ok else "\nMISMATCH between XLA and CPU (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
