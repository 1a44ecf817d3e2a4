"""What an experiment is: the problem, kept apart from the training method.

Following AlgoPerf (mlcommons/algorithmic-efficiency), an experiment owns its data, model, loss,
evaluation and targets; a scaling method (``date.METHODS``) sees it only through its base recipe.
The trainer never branches on an experiment's name: the real differences between experiments
(an LSTM state carried across BPTT windows, say) live in the hooks below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from date import Recipe

from ..core.divergence import Divergence
from ..core.targets import Claim, Target
from .schema import ConfigSchema

PRESET_NAMES = ("smoke", "quick", "full")  # every experiment has these
#: Presets an experiment may add: ``budget`` repeats the sweep at several epoch budgets;
#: ``full_budget`` the paper's setting at several budgets (the ones that would decide a claim,
#: beyond what a small machine affords); ``proxy`` runs the experiment's own model and recipe on
#: a small real or rule-based task that ships; ``tasks`` (gnmt) checks that the model uses its
#: source (copy and reverse).
OPTIONAL_PRESET_NAMES = ("budget", "full_budget", "proxy", "tasks")
#: What the reports of a proxy preset's records say beside every verdict (``Preset.proxy``).
PROXY_LABEL = "proxy at small scale, not the paper's setting"


@dataclass(frozen=True)
class Batch:
    """One global batch: tensors whose first dimension is the example dimension.

    ``reset_state`` tells a stateful model (truncated BPTT) to start from a fresh state: true at the
    start of each pass over the data.
    """

    tensors: tuple[torch.Tensor, ...]
    reset_state: bool = False

    @property
    def size(self) -> int:
        return int(self.tensors[0].shape[0])

    def split(self, micro_batch_size: int) -> list[Batch]:
        """Micro-batches of at most ``micro_batch_size`` examples, in order."""
        chunks = [t.split(micro_batch_size) for t in self.tensors]
        return [Batch(tuple(parts), self.reset_state) for parts in zip(*chunks, strict=True)]

    def to(self, device: torch.device) -> Batch:
        return Batch(tuple(t.to(device, non_blocking=True) for t in self.tensors), self.reset_state)


class TrainData(Protocol):
    """The training split as a deterministic stream of global batches."""

    def steps_per_epoch(self, batch_size: int) -> float:
        """Optimizer steps in one pass over the data (may be fractional: N / B)."""
        ...

    def stream(
        self, batch_size: int, seed: int, start_step: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        """Global batches from ``start_step`` on, the same for the same seed (resumable).

        ``shard=(rank, world_size)`` yields this rank's contiguous slice of every global batch.
        """
        ...


def rank_share(batch_size: int, shard: tuple[int, int]) -> slice:
    """This rank's contiguous part of a global batch of ``batch_size`` (shard = (rank, world))."""
    rank, world_size = shard
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} is not divisible by world_size={world_size}")
    per_rank = batch_size // world_size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``size`` examples for one epoch of one seed (the same on every run)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator)


def shuffled_batches(
    size: int, batch_size: int, seed: int, start_step: int = 0
) -> Iterator[list[tuple[int, int]]]:
    """(epoch, index) of every example of every global batch from ``start_step`` on: each epoch a
    fresh permutation, batches cut across epoch boundaries, so that a batch-B run takes exactly
    ``epochs * size / B`` full steps and drops no example (big_vision style). A function of
    (seed, step) alone, so a resumed run reads what the uninterrupted one would have."""
    epoch, offset = divmod(start_step * batch_size, size)
    order = epoch_order(size, seed, epoch).tolist()
    while True:
        keys: list[tuple[int, int]] = []
        while len(keys) < batch_size:
            take = min(batch_size - len(keys), size - offset)
            keys += [(epoch, index) for index in order[offset : offset + take]]
            offset += take
            if offset == size:
                epoch, offset = epoch + 1, 0
                order = epoch_order(size, seed, epoch).tolist()
        yield keys


class ShuffledExamples:
    """Independent examples in memory, reshuffled every epoch (``shuffled_batches``)."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        sizes = {int(t.shape[0]) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"tensors disagree on the number of examples: {sorted(sizes)}")
        self.tensors = tensors
        self.size = sizes.pop()

    def steps_per_epoch(self, batch_size: int) -> float:
        return self.size / batch_size

    def stream(
        self, batch_size: int, seed: int, start_step: int = 0, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        mine = rank_share(batch_size, shard)
        for keys in shuffled_batches(self.size, batch_size, seed, start_step):
            indices = torch.tensor([index for _, index in keys[mine]], dtype=torch.long)
            yield Batch(tuple(t[indices] for t in self.tensors))


@dataclass(frozen=True)
class Preset:
    """A named size of the experiment: ``smoke`` (seconds, for tests), ``quick`` (minutes on a
    laptop CPU, still showing the effect), ``full`` (the paper's setting).

    ``recipe`` overrides fields of the base recipe (e.g. a shorter epoch budget); ``model`` and
    ``data`` are passed to the experiment's builders.
    """

    name: str
    batch_sizes: tuple[int, ...]
    recipe: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("none", "linear", "sqrt", "date")
    seeds: int = 1
    base_seeds: int = 1  # seeds at the base batch, where the tolerance band is measured
    evals_per_epoch: float = 1.0
    # Epoch budgets E of a budget sweep: the batch x method sweep is repeated at each
    # E, with the base recipe tuned at the base batch for that E (validation only) and scaled
    # without re-tuning. Empty: a single sweep at the recipe's own epochs.
    budgets: tuple[float, ...] = ()
    # False: every budget runs the preset's own base recipe (its schedule stretched to E), not
    # tuned per budget: for a reference recipe whose lr is the published one (and whose tuning
    # would cost more base runs than the budget's sweep itself).
    tune_budgets: bool = True
    # Cells where a verdict is decided get more seeds, so that it never rests on one run:
    # ``decisive_seeds`` for ``decisive_methods`` at the scale factors ``decisive_scales``.
    decisive_seeds: int = 1
    decisive_methods: tuple[str, ...] = ("date", "linear", "sqrt")
    decisive_scales: tuple[int, ...] = (16, 64)
    # The steps-to-result target of a budget sweep, where the preset's data slice cannot reach
    # the experiment's time-to-target value (None: the experiment's).
    time_to_target: Target | None = None
    # The metric this preset is judged by, when it is not the experiment's (a reduced preset may
    # compare by loss where the experiment's metric means nothing at its size); with its mode and
    # tolerance-band floor. Claims about another metric are then not applicable to its records.
    primary_metric: str | None = None
    mode: str | None = None
    band_floor: float | None = None
    # A proxy preset trains the experiment's own model and recipe on a small stand-in for the
    # paper's data (a set that ships), where the paper's setting cannot run here: ``proxy`` says
    # what stands in for what. Its records carry it with PROXY_LABEL (``proxy_record``), and the
    # reports print that label beside every verdict and never set the paper's reference values
    # against these records.
    proxy: str | None = None

    def __post_init__(self) -> None:
        if self.proxy is not None and not self.proxy.strip():
            raise ValueError(f"preset {self.name!r}: proxy must say what stands in for what")
        if (self.primary_metric is None) != (self.mode is None):
            raise ValueError(f"preset {self.name!r}: set primary_metric and mode together")
        if self.mode is not None and self.mode not in ("min", "max"):
            raise ValueError(
                f"preset {self.name!r}: mode must be 'min' or 'max', got {self.mode!r}"
            )


def proxy_record(preset: Preset) -> dict[str, str] | None:
    """The ``proxy`` field of a run record of ``preset``: the label its reports print beside
    every verdict and what the proxy stands in for; None for a preset of the paper's setting."""
    if preset.proxy is None:
        return None
    return {"label": PROXY_LABEL, "setting": preset.proxy}


@dataclass(frozen=True)
class DataBundle:
    """What an experiment's data builder returns."""

    train: TrainData
    valid: Any  # evaluated every epoch
    test: Any  # evaluated once, at the end
    info: Mapping[str, Any] = field(default_factory=dict)  # provenance for the record


class LossFunction(Protocol):
    def __call__(self, model: nn.Module, batch: Batch, state: Any) -> tuple[torch.Tensor, int, Any]:
        """Return (sum of per-item losses, number of items, state to carry to the next window)."""
        ...


@dataclass(frozen=True)
class Experiment:
    """One paper experiment (AlgoPerf's "workload")."""

    name: str
    description: str
    base_recipe: Recipe
    presets: Mapping[str, Preset]
    build_data: Callable[[str, Path | None, Mapping[str, Any]], DataBundle]
    build_model: Callable[[Mapping[str, Any]], nn.Module]
    loss: LossFunction
    evaluate: Callable[[nn.Module, Any, torch.device, int], dict[str, float]]
    primary_metric: str
    mode: str  # "max" or "min"; never guessed from the metric's name
    time_to_target: Target | None = None
    targets: tuple[Target, ...] = ()
    claims: tuple[Claim, ...] = ()
    band_floor: float = 0.0  # smallest tolerance band, in units of the primary metric
    model_defaults: Mapping[str, Any] = field(default_factory=dict)  # keys --set model.KEY accepts
    data_defaults: Mapping[str, Any] = field(default_factory=dict)  # keys --set data.KEY accepts
    # Data keys that change how the data is read but never what is trained (loader workers, say):
    # left out of a run's configuration key, so a rerun or --resume with another value continues
    # the same run; the record still shows them.
    data_runtime_keys: tuple[str, ...] = ()
    data_sources: tuple[str, ...] = ("local",)
    micro_batch_candidates: tuple[int, ...] = (64, 128, 256, 512, 1024)
    # The largest micro-batch per device kind, the default split of a global batch (a function of
    # the configuration and the device only, so the same command trains the same way every time).
    # "cuda" is for a 16 GiB device and scales with the device's memory (trainer.micro_batch_limit).
    micro_batch_limits: Mapping[str, int] = field(
        default_factory=lambda: {"cpu": 128, "cuda": 256, "tpu": 128}
    )
    tuning_grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # base-batch grid
    divergence: Divergence = field(default_factory=Divergence)
    # The declared type and range of every model.KEY and data.KEY, cross-key rules and the
    # activation-memory estimate (schema.py); checked before anything trains (config_check.py).
    config_schema: ConfigSchema | None = None
    # Optional hooks, for experiments whose data is not shipped (ImageNet, WMT16):
    # check_data(source, data_dir, data_config) raises reproduce.datasets.DataError with what
    # to provide (where it looked, the layout, the preparation command, --data-dir) when the
    # data is not there; the CLI calls it before anything is written and exits 2.
    check_data: Callable[[str, Path | None, Mapping[str, Any]], None] | None = None
    # train_examples(data_config): the size of the training split without reading it, so that
    # --plan (steps per epoch, warmup steps) works where the data is absent.
    train_examples: Callable[[Mapping[str, Any]], int] | None = None
    # synthetic_batch(model_config, data_config, size): a batch of the real shapes and dtypes,
    # for timing a training step (--plan's estimate) without the data.
    synthetic_batch: Callable[[Mapping[str, Any], Mapping[str, Any], int], Batch] | None = None
    # record_info(data, recipe): per-run facts for the record's "experiment_info" (e.g. tokens per
    # batch at this batch size, the signature of a metric's definition).
    record_info: Callable[[DataBundle, Recipe], Mapping[str, Any]] | None = None
    # The preset `reproduce/run.py NAME` runs without --preset (an experiment whose data is not
    # shipped may default to its full preset, so that the bare command says what to provide).
    default_preset: str = "quick"

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"{self.name}: mode must be 'min' or 'max', got {self.mode!r}")
        missing = [p for p in PRESET_NAMES if p not in self.presets]
        if missing:
            raise ValueError(f"{self.name}: presets {missing} are missing")
        if self.default_preset not in PRESET_NAMES:
            raise ValueError(f"{self.name}: default_preset must be one of {PRESET_NAMES}")
        unknown = [p for p in self.presets if p not in (*PRESET_NAMES, *OPTIONAL_PRESET_NAMES)]
        if unknown:
            raise ValueError(f"{self.name}: unknown presets {unknown}")
        for name, preset in self.presets.items():
            if preset.name != name:
                raise ValueError(f"{self.name}: preset {name!r} is named {preset.name!r}")

    @property
    def base_batch_size(self) -> int:
        return self.base_recipe.batch_size

    def recipe_for(self, preset: str, overrides: Mapping[str, Any] | None = None) -> Recipe:
        """The base recipe with the preset's and the user's overrides applied."""
        changes = {**self.presets[preset].recipe, **(overrides or {})}
        return dataclasses.replace(self.base_recipe, **changes) if changes else self.base_recipe

    def metric_for(self, preset: str) -> tuple[str, str, float]:
        """(primary metric, mode, band floor) by which ``preset``'s records are judged."""
        settings = self.presets[preset]
        if settings.primary_metric is None:
            return self.primary_metric, self.mode, self.band_floor
        floor = settings.band_floor if settings.band_floor is not None else self.band_floor
        return settings.primary_metric, str(settings.mode), floor

    def better(self, a: float, b: float) -> bool:
        """Whether metric value ``a`` is better than ``b`` under this experiment's mode."""
        return a > b if self.mode == "max" else a < b
