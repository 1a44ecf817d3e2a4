"""Which batch is worth it, from a short run at the base batch: the run's spec, and the advice
written from its record.

The short run trains the experiment's base recipe at its base batch for a short budget with a
micro-batch below the batch, so that every step holds gradients at two sizes and the trainer
records the gradient noise scale B_simple (``run/noise_probe.py``). The advice is what ``python
-m date advise --record`` prints for that record: the critical batch estimate B_crit ~ B_simple
(McCandlish et al. 2018, arXiv 1812.06162), the suggested batch and the DATE recipe there, scaled
from the full base recipe (not the shortened one); it is written to ``advice.md`` and
``advice.json`` beside the run record.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import date
from date.advise import noise_from_record
from date.noise import DEFAULT_DECAY

from ..core.io import atomic_write_text
from ..core.records import record_name
from .spec import SweepSpec

#: The short run's micro-batch, as a fraction of the base batch: on a linear-regression problem
#: with known noise (tests/test_noise.py), the spread of the estimate fell from 10% to 8% to 7% of
#: the truth going from 1/2 to 1/4 to 1/8 of the batch; 1/4 keeps most of the gain while the
#: micro-batches stay large enough to run efficiently.
MICRO_BATCH_FRACTION = 4

DEFAULT_EPOCHS = 1.0


def default_micro_batch(base_batch: int) -> int:
    """The largest divisor of the base batch that is at most base / MICRO_BATCH_FRACTION."""
    limit = max(1, base_batch // MICRO_BATCH_FRACTION)
    return max(d for d in range(1, limit + 1) if base_batch % d == 0)


def short_budget(base: date.Recipe, epochs: float) -> dict[str, object]:
    """Recipe overrides that cut ``base``'s budget to ``epochs``: a decay start or milestone
    beyond the cut is dropped (that part of the schedule is never reached), so the short run
    follows the full schedule where it does not depend on the budget (warmup, constant and
    step-wise phases); a poly or cosine decay runs over the shorter budget."""
    overrides: dict[str, object] = {"epochs": epochs}
    if base.decay_start_epoch > epochs:
        overrides["decay_start_epoch"] = epochs
    if any(milestone > epochs for milestone in base.milestones):
        overrides["milestones"] = tuple(m for m in base.milestones if m <= epochs)
    return overrides


def short_run_spec(
    spec: SweepSpec, epochs: float, micro_batch: int | None, out: Path | None
) -> SweepSpec:
    """The spec of the short run from a spec of method none at the base batch with one seed:
    ``epochs`` of the base recipe, with ``micro_batch`` (default ``default_micro_batch``) and the
    noise measured, in ``out`` (default runs/EXPERIMENT/advise). ValueError naming a bad option."""
    base = spec.base_recipe
    micro = default_micro_batch(base.batch_size) if micro_batch is None else micro_batch
    if not 0 < micro < base.batch_size:
        raise ValueError(
            f"--micro-batch {micro}: must be between 1 and {base.batch_size - 1}, below the "
            f"base batch {base.batch_size}, so that each step has gradients at two sizes"
        )
    if base.warmup_epochs > epochs:
        raise ValueError(
            f"--epochs {epochs:g} is shorter than the base recipe's warmup "
            f"({base.warmup_epochs:g} epochs): use --epochs {math.ceil(base.warmup_epochs)} or more"
        )
    # The folder's preset plan is this one run, so its report does not list the preset's other
    # runs as missing (nor try to scale the shortened budget to them).
    preset = dataclasses.replace(
        spec.experiment.presets[spec.preset],
        methods=("none",),
        batch_sizes=(base.batch_size,),
        seeds=1,
        base_seeds=1,
    )
    experiment = dataclasses.replace(
        spec.experiment, presets={**spec.experiment.presets, spec.preset: preset}
    )
    return dataclasses.replace(
        spec,
        experiment=experiment,
        batch_sizes=(base.batch_size,),
        base_seeds=1,
        recipe_overrides={**spec.recipe_overrides, **short_budget(base, epochs)},
        run=dataclasses.replace(spec.run, micro_batch_size=micro, measure_noise=True),
        out_dir=out or Path("runs") / spec.experiment.name / "advise",
    )


def read_advice(
    spec: SweepSpec, base: date.Recipe, method: str
) -> tuple[Path, dict[str, Any], date.Advice]:
    """The short run's record (in ``spec.out_dir``), its noise reading, and the advice for the
    full ``base`` recipe scaled by ``method``; ValueError (or RecordError) when the record gives
    no noise reading."""
    path = spec.out_dir / "runs" / record_name("none", base.batch_size, 0)
    reading = noise_from_record(path, DEFAULT_DECAY)
    return path, reading, date.advise(base, reading["noise_scale"], reading["dataset_size"], method)


def write_advice(
    spec: SweepSpec,
    base: date.Recipe,
    path: Path,
    reading: dict[str, Any],
    advice: date.Advice,
    argv: Sequence[str],
) -> str:
    """advice.md and advice.json beside the short run's record; the text of advice.md."""
    text = (
        f"# {spec.experiment.name}: which batch is worth it\n\n"
        f"Generated by `python reproduce/advise.py {' '.join(argv)}` from the record "
        f"`runs/{path.name}`: the base recipe at batch {base.batch_size} trained for "
        f"{spec.base_recipe.epochs:g} epoch(s) with micro-batch {spec.run.micro_batch_size}. "
        f"B_simple {reading['noise_scale']:.4g} at its step {reading['step']} of "
        f"{reading['steps']} (EMA, decay {DEFAULT_DECAY:g}); "
        f"{_fmt(reading['pooled_noise_scale'])} pooled over its {reading['measured_steps']} "
        "measured steps.\n\n" + date.format_advice(advice) + "\n"
    )
    atomic_write_text(spec.out_dir / "advice.md", text)
    measured = {key: value for key, value in reading.items() if key != "base_recipe"}
    advice_json = {**dataclasses.asdict(advice), "measured": measured, "record": path.name}
    atomic_write_text(spec.out_dir / "advice.json", json.dumps(advice_json, indent=2) + "\n")
    return text


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"
