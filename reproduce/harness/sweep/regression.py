"""Regression checks: stored expectations that a change to the suite must not move silently.

Accuracy. Each registered experiment has a short, fixed-seed CPU run on a real data slice (a size
derived from its smoke preset, ``regression_config``) trained by the suite's own
``trainer.train``. Its training-loss curve, as window means at ``POINTS`` points, and its final
primary metric are stored in ``tests/expectations/<experiment>.json`` with a tolerance for each
number measured from the seed-to-seed spread: K seeds of the same config are run, and
``tolerance = max(k_sigma * sample std, floor)``. tests/test_regression.py reruns the fixed seed
and fails when a number moves beyond its tolerance; ``python reproduce/regress.py --update``
regenerates the file on purpose, so that the change shows in review.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from date import Recipe

from ..core.io import atomic_write_json
from ..run.devices import cpu_model, resolve_device
from ..run.experiment import DataBundle, Experiment
from ..run.provenance import REPO_ROOT, git_state
from ..run.trainer import train

EXPECTATIONS_DIR = REPO_ROOT / "tests" / "expectations"
EXPECTATION_VERSION = 1
#: Points of the stored loss curve: each the mean training loss over one of POINTS equal windows
#: of steps. A window mean is far less noisy than a single step's loss on one small batch.
POINTS = 20
#: Seeds run by --update to measure the seed-to-seed spread (the fixed seed is one of them).
DEFAULT_SEEDS = 5
#: Tolerance = K_SIGMA x the sample std over seeds. Chosen, not derived: a rerun of the fixed
#: seed on the same machine and torch build is bitwise identical (deviation 0), and on another
#: CPU or torch build only float rounding differs, which moves a run far less than a new seed; 4
#: (rather than 2 or 3) leaves room for the sample std of 5 seeds, which is often half the true one.
K_SIGMA = 4.0
#: Smallest tolerance of a loss point, in nats (about 1% in perplexity): keeps a point whose
#: seeds happen to agree closely from failing on rounding alone.
LOSS_FLOOR = 0.01
#: torch intra-op threads of every regression run: the kernels, hence the rounding, depend on it.
THREADS = 1
UPDATE_COMMAND = "python reproduce/regress.py --update"


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressionSize:
    """How a regression run grows an experiment's smoke preset: a longer budget and, where the
    smoke slice is too small for the loss to fall clearly, a bigger model or data slice."""

    epochs: float = 4.0
    model: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)


#: Measured on this project's 2-core CPU with one thread while a sweep ran on both cores: each
#: run takes 5-15 s, and its loss falls from the untrained value by more than 20 seed stds.
#: An experiment not listed here gets RegressionSize(): its smoke preset for 4 epochs.
PTB_SIZE = RegressionSize(epochs=3, model={"hidden_size": 32}, data={"train_tokens": 20_000})
REGRESSION_SIZES: dict[str, RegressionSize] = {
    # 1,024 steps of batch 32; test accuracy about 0.91, seed std about 0.003.
    "mnist_lstm": RegressionSize(
        epochs=4, model={"hidden_size": 64}, data={"train_examples": 8192, "test_examples": 2000}
    ),
    # 147 (small, bptt 20) and 84 (large, bptt 35) steps of 20 rows on 20k tokens: the loss
    # falls from 9.2 to 6.5 nats; the 10,000-word softmax is most of the cost.
    "ptb_small": PTB_SIZE,
    "ptb_large": PTB_SIZE,
    # 20 steps of 4 of the 10 shipped images at 64 px (8 epochs; the smoke preset's 4 would be
    # 10 steps, too few for 20 curve points): the full ResNet-50 learns the 10 images.
    "imagenet_resnet50": RegressionSize(epochs=8),
    # 40 steps of 16 pairs with a 2 x 256 GNMT and the reference's decays at 10 epochs: the smoke
    # preset as it was before it shrank to seconds (width 64, 4 epochs), so that the expectation
    # stays the one measured.
    "gnmt": RegressionSize(
        epochs=10,
        model={"hidden_size": 256},
        recipe={"milestones": (6.66, 7.495, 8.33, 9.165)},
    ),
}


@dataclass(frozen=True)
class RegressionConfig:
    """Everything a regression run depends on; stored in the expectation file and compared."""

    experiment: str
    recipe: Recipe
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    evals_per_epoch: float
    seed: int = 0
    data_source: str = "local"
    points: int = POINTS
    threads: int = THREADS

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the form stored in the expectation file)."""
        return json.loads(
            json.dumps(
                {
                    "experiment": self.experiment,
                    "recipe": self.recipe.to_dict(),
                    "model": dict(self.model),
                    "data": dict(self.data),
                    "data_source": self.data_source,
                    "evals_per_epoch": self.evals_per_epoch,
                    "micro_batch_size": self.recipe.batch_size,
                    "seed": self.seed,
                    "points": self.points,
                    "threads": self.threads,
                }
            )
        )


def regression_config(experiment: Experiment) -> RegressionConfig:
    """The experiment's smoke preset grown by its ``REGRESSION_SIZES`` entry."""
    size = REGRESSION_SIZES.get(experiment.name, RegressionSize())
    smoke = experiment.presets["smoke"]
    for kind, changes, defaults in (
        ("model", size.model, experiment.model_defaults),
        ("data", size.data, experiment.data_defaults),
    ):
        unknown = sorted(set(changes) - set(defaults))
        if unknown:
            raise ValueError(f"{experiment.name}: regression {kind} keys {unknown} are unknown")
    return RegressionConfig(
        experiment=experiment.name,
        recipe=experiment.recipe_for("smoke", {"epochs": size.epochs, **size.recipe}),
        model={**experiment.model_defaults, **smoke.model, **size.model},
        data={**experiment.data_defaults, **smoke.data, **size.data},
        evals_per_epoch=smoke.evals_per_epoch,
    )


def curve_windows(steps: int, points: int) -> list[tuple[int, int]]:
    """``points`` contiguous [start, stop) windows covering ``steps`` steps, as equal as can be."""
    if steps < points:
        raise ValueError(f"{steps} steps are too few for {points} curve points")
    bounds = [round(index * steps / points) for index in range(points + 1)]
    return list(itertools.pairwise(bounds))


@dataclass(frozen=True)
class Observation:
    """What one regression run produced."""

    seed: int
    status: str
    metric: float | None
    curve: list[float]  # mean training loss over each window
    windows: list[tuple[int, int]]
    seconds: float


def build_data(experiment: Experiment, config: RegressionConfig) -> DataBundle:
    """The data slice of ``config`` (built once and shared by the seeds of an update)."""
    return experiment.build_data(config.data_source, None, config.data)


def run_regression(
    experiment: Experiment,
    config: RegressionConfig,
    seed: int | None = None,
    data: DataBundle | None = None,
) -> Observation:
    """Train ``config`` with ``seed`` (default: the config's fixed seed) through trainer.train."""
    seed = config.seed if seed is None else seed
    data = data if data is not None else build_data(experiment, config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    try:
        result = train(
            experiment,
            config.recipe,
            data,
            config.model,
            seed,
            resolve_device("cpu"),
            micro_batch_size=config.recipe.batch_size,
            evals_per_epoch=config.evals_per_epoch,
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    losses = result.progress.curves["loss"]
    windows = curve_windows(result.total_steps, config.points)
    curve = [statistics.fmean(losses[start:stop]) for start, stop in windows if stop <= len(losses)]
    return Observation(
        seed=seed,
        status=result.status,
        metric=result.final.get(experiment.primary_metric),
        curve=curve,
        windows=windows,
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------------------------


def expectation_path(name: str, folder: Path = EXPECTATIONS_DIR) -> Path:
    """Where the expectation of experiment ``name`` is stored."""
    return Path(folder) / f"{name}.json"


def tolerance(std: float, k_sigma: float, floor: float) -> float:
    """max(k_sigma * std, floor)."""
    return max(k_sigma * std, floor)


def build_expectation(
    experiment: Experiment,
    config: RegressionConfig,
    observations: Sequence[Observation],
    command: str,
    k_sigma: float = K_SIGMA,
    loss_floor: float = LOSS_FLOOR,
) -> dict[str, Any]:
    """The expectation file's content: the fixed seed's numbers, and tolerances from the spread of
    every observed seed. The metric's floor is the experiment's ``band_floor`` (its smallest
    difference worth calling a loss)."""
    if len(observations) < 2:
        raise ValueError("at least 2 seeds are needed to measure a seed-to-seed std")
    bad = [o.seed for o in observations if o.status != "ok" or o.metric is None]
    if bad:
        raise ValueError(f"{experiment.name}: seeds {bad} diverged; no tolerance can be measured")
    fixed = [o for o in observations if o.seed == config.seed]
    if len(fixed) != 1:
        raise ValueError(f"the fixed seed {config.seed} must be observed exactly once")
    expected = fixed[0]
    metric_std = statistics.stdev(o.metric for o in observations)  # type: ignore[misc]
    point_stds = [
        statistics.stdev(o.curve[index] for o in observations) for index in range(config.points)
    ]
    metric_floor = experiment.band_floor
    return {
        "version": EXPECTATION_VERSION,
        "experiment": experiment.name,
        "config": config.to_dict(),
        "metric": {
            "name": experiment.primary_metric,
            "mode": experiment.mode,
            "value": expected.metric,
            "std": metric_std,
            "tolerance": tolerance(metric_std, k_sigma, metric_floor),
        },
        "curve": {
            "quantity": "mean training loss over each window of steps [start, stop)",
            "windows": [list(window) for window in expected.windows],
            "loss": expected.curve,
            "std": point_stds,
            "tolerance": [tolerance(std, k_sigma, loss_floor) for std in point_stds],
        },
        "tolerance_rule": {
            "formula": "max(k_sigma * std, floor); std = sample std (ddof 1) over the seeds",
            "k_sigma": k_sigma,
            "loss_floor": loss_floor,
            "metric_floor": metric_floor,
            "seeds": [o.seed for o in observations],
        },
        "seed_runs": [
            {"seed": o.seed, "metric": o.metric, "loss": o.curve, "seconds": round(o.seconds, 2)}
            for o in observations
        ],
        "provenance": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": config.threads,
            **git_state(),
            "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "command": command,
        },
    }


def load_expectation(path: Path) -> dict[str, Any]:
    """An expectation file's content."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """'key: stored -> current' for every config entry (nested keys dotted) that changed."""
    differences = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            differences += [f"{key}.{line}" for line in config_differences(old, new)]
        elif old != new:
            differences.append(f"{key}: {old!r} -> {new!r}")
    return differences


@dataclass(frozen=True)
class Deviation:
    """One stored number against the rerun's."""

    quantity: str
    expected: float
    observed: float | None
    tolerance: float

    @property
    def delta(self) -> float | None:
        return None if self.observed is None else self.observed - self.expected

    @property
    def exceeded(self) -> bool:
        delta = self.delta
        return delta is None or not math.isfinite(delta) or abs(delta) > self.tolerance

    def describe(self) -> str:
        if self.delta is None:
            return f"{self.quantity}: expected {self.expected:.6g}, the rerun has no value"
        return (
            f"{self.quantity} moved by {self.delta:+.4g} (expected {self.expected:.6g}, got "
            f"{self.observed:.6g}; tolerance {self.tolerance:.3g})"
        )


def compare(expectation: Mapping[str, Any], observation: Observation) -> list[Deviation]:
    """The final metric, then every curve point, against the expectation."""
    metric = expectation["metric"]
    deviations = [
        Deviation(
            f"final {metric['name']}", metric["value"], observation.metric, metric["tolerance"]
        )
    ]
    curve = expectation["curve"]
    count = len(curve["loss"])
    for index, (expected, allowed, window) in enumerate(
        zip(curve["loss"], curve["tolerance"], curve["windows"], strict=True)
    ):
        observed = observation.curve[index] if index < len(observation.curve) else None
        quantity = f"loss point {index + 1}/{count} (steps {window[0]}-{window[1] - 1})"
        deviations.append(Deviation(quantity, expected, observed, allowed))
    return deviations


@dataclass
class CheckResult:
    """The outcome of checking one experiment against its stored expectation."""

    experiment: str
    path: Path
    problems: list[str] = field(default_factory=list)  # missing file, changed config, divergence
    deviations: list[Deviation] = field(default_factory=list)
    seconds: float | None = None

    @property
    def exceeded(self) -> list[Deviation]:
        return [deviation for deviation in self.deviations if deviation.exceeded]

    @property
    def passed(self) -> bool:
        return not self.problems and not self.exceeded

    def message(self) -> str:
        """What failed and how to accept the change on purpose."""
        lines = [f"{self.experiment}: accuracy regression check against {self.path}"]
        lines += [f"  {problem}" for problem in self.problems]
        lines += [f"  {deviation.describe()}" for deviation in self.exceeded]
        lines.append(
            f"To create the file, or to accept an intended change, run `{UPDATE_COMMAND} "
            f"{self.experiment}` and commit {shown_path(self.path)} so that the change shows in "
            "review."
        )
        return "\n".join(lines)


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def check(experiment: Experiment, folder: Path = EXPECTATIONS_DIR) -> CheckResult:
    """Rerun the fixed seed of ``experiment``'s regression config and compare it with the file."""
    path = expectation_path(experiment.name, folder)
    result = CheckResult(experiment.name, path)
    if not path.is_file():
        result.problems.append(f"no expectation file at {path}")
        return result
    expectation = load_expectation(path)
    if expectation.get("version") != EXPECTATION_VERSION:
        result.problems.append(
            f"the file has format version {expectation.get('version')!r}, this code reads "
            f"{EXPECTATION_VERSION}"
        )
        return result
    config = regression_config(experiment)
    changed = config_differences(expectation["config"], config.to_dict())
    if changed:
        result.problems.append(
            "the regression config changed since the expectation was stored: " + "; ".join(changed)
        )
        return result
    observation = run_regression(experiment, config)
    result.seconds = observation.seconds
    if observation.status != "ok":
        result.problems.append(f"the run {observation.status} (status {observation.status!r})")
    result.deviations = compare(expectation, observation)
    return result


def update(
    experiment: Experiment,
    seeds: int,
    command: str,
    folder: Path = EXPECTATIONS_DIR,
    log: Callable[[str], None] = print,
) -> Path:
    """Run ``seeds`` seeds of the regression config and write the expectation file."""
    config = regression_config(experiment)
    data = build_data(experiment, config)
    observations = []
    for seed in range(config.seed, config.seed + seeds):
        observation = run_regression(experiment, config, seed, data)
        log(
            f"{experiment.name} seed {seed}: {experiment.primary_metric}="
            f"{observation.metric} in {observation.seconds:.1f}s"
        )
        observations.append(observation)
    path = expectation_path(experiment.name, folder)
    atomic_write_json(path, build_expectation(experiment, config, observations, command))
    return path


def deviation_rows(result: CheckResult) -> list[list[str]]:
    """Table rows: the metric, the curve point that moved most relative to its tolerance, and
    every other point beyond its tolerance."""
    if not result.deviations:
        return [[result.experiment, "; ".join(result.problems), "", "", "", "", "", "FAIL"]]
    metric, *points = result.deviations

    def ratio(deviation: Deviation) -> float:
        return math.inf if deviation.delta is None else abs(deviation.delta) / deviation.tolerance

    worst = max(points, key=ratio)
    shown = [metric, worst, *[p for p in points if p.exceeded and p is not worst]]
    rows = []
    for deviation in shown:
        rows.append(
            [
                result.experiment,
                deviation.quantity + (" (worst point)" if deviation is worst else ""),
                f"{deviation.expected:.6g}",
                "—" if deviation.observed is None else f"{deviation.observed:.6g}",
                "—" if deviation.delta is None else f"{deviation.delta:+.3g}",
                f"{deviation.tolerance:.3g}",
                "—" if deviation.delta is None else f"{ratio(deviation):.2f}",
                "FAIL" if deviation.exceeded else "ok",
            ]
        )
    if result.problems:
        rows.append([result.experiment, "; ".join(result.problems), "", "", "", "", "", "FAIL"])
    return rows
