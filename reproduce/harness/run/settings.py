"""How a run is executed, apart from what it trains: ``--set run.KEY=VALUE``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunSettings:
    """Knobs of how a run is executed (not what is trained); set with ``--set run.KEY=VALUE``."""

    micro_batch_size: int | None = None  # None: the experiment's rule for the device
    measure_micro_batch: bool = False  # opt-in: time the candidates and take the fastest
    measure_noise: bool = True  # gradient noise scale in the curves (trainer's noise_probe.py)
    evals_per_epoch: float | None = None  # None: the preset's
    precision: str = "fp32"  # or "bf16": autocast forward passes; master weights stay fp32
    checkpoint_every_epochs: float | None = None
    checkpoint_every_minutes: float | None = 10.0
