"""The check of a sweep's whole configuration against its experiment's schema (``run/schema.py``),
run by the command line before anything is trained or written: every recipe field, ``model.``,
``data.`` and ``run.`` key, the preset's values and the user's ``--set`` alike, the schema's
cross-key rules, and the memory a run needs against the memory the machine has.

A problem is a ConfigError whose message is one line naming the key, its value, the valid range
and why (the command line exits 2 with it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..run.schema import RECIPE_FIELDS, RUN_FIELDS, ConfigSchema, ConfigView, Field
from ..run.settings import RunSettings
from .spec import SweepSpec

#: Bytes of a parameter, of its gradient and of each optimizer state value: float32 (the master
#: weights stay float32 under bf16 autocast, trainer.autocast).
BYTES_PER_VALUE = 4
#: Optimizer state values per parameter (torch.optim and pytorch-optimizer): momentum buffers,
#: Adam's two moments, Adagrad's sum of squares.
OPTIMIZER_STATES = {"sgd": 1, "lars": 1, "adam": 2, "adamw": 2, "lamb": 2, "adagrad": 1}


#: Recipe fields that only some optimizers or decays read (date/optim.py, date/schedule.py): a
#: value the user sets for one the recipe does not read would change nothing, so it is refused.
USED_ONLY_BY: dict[str, tuple[str, tuple[str, ...]]] = {
    "betas": ("optimizer", ("adam", "adamw", "lamb")),
    "eps": ("optimizer", ("adam", "adamw", "adagrad", "lamb")),
    "trust_coefficient": ("optimizer", ("lars",)),
    "poly_power": ("decay", ("poly",)),
    "final_lr_factor": ("decay", ("poly", "cosine")),
    "decay_rate": ("decay", ("exponential",)),
    "decay_start_epoch": ("decay", ("exponential",)),
    "staircase": ("decay", ("exponential",)),
    "milestones": ("decay", ("multistep",)),
    "milestone_factor": ("decay", ("multistep",)),
}


class ConfigError(ValueError):
    """A configuration value outside its declared range, or a run that cannot fit: exit 2."""


def value_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(value_text(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def user_keys(spec: SweepSpec) -> frozenset[str]:
    """The keys the user set with --set (a run setting counts when it differs from the default:
    RunSettings does not remember who set it)."""
    defaults = RunSettings()
    keys = {*spec.recipe_overrides}
    keys |= {f"model.{key}" for key in spec.model_overrides}
    keys |= {f"data.{key}" for key in spec.data_overrides}
    keys |= {
        f"run.{item.name}"
        for item in dataclasses.fields(spec.run)
        if getattr(spec.run, item.name) != getattr(defaults, item.name)
    }
    if spec.data_source != "local":
        keys.add("data.source")
    return frozenset(keys)


def field_problem(key: str, value: Any, rule: Field | None, spec: SweepSpec, keys) -> str | None:
    """One line when ``value`` of ``key`` is outside ``rule``."""
    where = (
        f"--set {key}={value_text(value)}"
        if key in keys
        else f"{key}={value_text(value)} (the {spec.preset!r} preset's)"
    )
    if rule is None:
        return (
            f"{where}: {key} has no declared type and range; declare it in the "
            f"{spec.experiment.name} experiment's config schema"
        )
    problem = rule.problem(value)
    if problem is None:
        return None
    reason = (
        f" ({rule.why})"
        if rule.why and "(" not in rule.why
        else f": {rule.why}"
        if rule.why
        else ""
    )
    return f"{where}: {problem}; must be {rule.describe()}{reason}"


def check_config(spec: SweepSpec) -> None:
    """Every key of ``spec`` against its experiment's schema; ConfigError on the first problem."""
    schema: ConfigSchema | None = spec.experiment.config_schema
    if schema is None:
        raise ConfigError(f"experiment {spec.experiment.name!r} declares no config schema")
    keys = user_keys(spec)

    def check(key: str, value: Any, rule: Field | None) -> None:
        problem = field_problem(key, value, rule, spec, keys)
        if problem:
            raise ConfigError(problem)

    for key, value in spec.recipe_overrides.items():  # the user's values first, named as theirs
        check(key, value, RECIPE_FIELDS.get(key))
    try:
        recipe = spec.base_recipe
    except ValueError as error:
        raise ConfigError(str(error)) from None
    for key, value in recipe.to_dict().items():
        check(key, value, RECIPE_FIELDS.get(key))
    for key in spec.recipe_overrides:
        if key in USED_ONLY_BY:
            chooser, users = USED_ONLY_BY[key]
            if getattr(recipe, chooser) not in users:
                raise ConfigError(
                    f"--set {key}: not used with {chooser}={getattr(recipe, chooser)} (only with "
                    f"{chooser} {', '.join(users)}); it would change nothing"
                )
    if "warmup_start_factor" in spec.recipe_overrides and recipe.warmup_epochs == 0:
        raise ConfigError(
            "--set warmup_start_factor: not used without warmup (warmup_epochs=0); it would "
            "change nothing"
        )
    for key, value in spec.model_config.items():
        check(f"model.{key}", value, schema.model.get(key))
    for key, value in {"source": spec.data_source, **spec.data_config}.items():
        rule = schema.data.get(key)
        if key == "source" and rule is not None:
            rule = dataclasses.replace(rule, choices=spec.experiment.data_sources)
        check(f"data.{key}", value, rule)
    for item in dataclasses.fields(spec.run):
        check(f"run.{item.name}", getattr(spec.run, item.name), RUN_FIELDS.get(item.name))
    view = ConfigView(
        recipe=recipe,
        model=spec.model_config,
        data=spec.data_config,
        source=spec.data_source,
        data_dir=spec.data_dir,
        user_keys=keys,
    )
    for rule in schema.rules:
        problem = rule(view)
        if problem:
            raise ConfigError(problem)
    micro = spec.run.micro_batch_size
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    smallest = min(spec.batch_sizes) // max(1, world_size)
    if micro is not None and micro > smallest:
        raise ConfigError(
            f"--set run.micro_batch_size={micro}: larger than the batch of {smallest} per device "
            f"of this sweep (batch {min(spec.batch_sizes)}); a micro-batch is a part of a batch: "
            f"use at most {smallest}"
        )


def machine_memory(device_kind: str) -> int | None:
    """Bytes of memory a run can use: the CPU's RAM (under a cgroup limit, the smaller), a CUDA
    device's memory; None where it is not known here (TPU)."""
    if device_kind == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(0).total_memory)
    if device_kind != "cpu":
        return None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            memory = min(memory, int(text))
    return int(memory)


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} EiB"  # pragma: no cover


_PARAMETER_COUNTS: dict[tuple[int, str], int] = {}


def parameter_count(build_model, model_config: Mapping[str, Any]) -> int:
    """Parameters of the model ``build_model(model_config)`` builds, counted on torch's meta
    device (no memory, no compute); remembered per configuration (ResNet-50 takes 0.2 s)."""
    import torch

    key = (id(build_model), json.dumps(dict(model_config), sort_keys=True, default=str))
    if key not in _PARAMETER_COUNTS:
        with torch.device("meta"):
            model = build_model(model_config)
        _PARAMETER_COUNTS[key] = sum(parameter.numel() for parameter in model.parameters())
    return _PARAMETER_COUNTS[key]


def estimated_bytes(spec: SweepSpec, micro_batch: int) -> tuple[float, int, float]:
    """(total, parameters, activation bytes): a lower bound of the memory one training step
    needs: the float32 weights, their gradients and the optimizer's state, and the activations
    the backward pass of one micro-batch keeps (the experiment's estimate)."""
    parameters = parameter_count(spec.experiment.build_model, spec.model_config)
    recipe = spec.base_recipe
    states = OPTIMIZER_STATES.get(recipe.optimizer, 2)
    if recipe.optimizer == "sgd" and recipe.momentum == 0:
        states = 0
    weights = float(parameters) * BYTES_PER_VALUE * (2 + states)
    schema = spec.experiment.config_schema
    activations = 0.0
    if schema is not None and schema.activation_bytes is not None:
        activations = float(
            schema.activation_bytes(spec.model_config, spec.data_config, micro_batch)
        )
    return weights + activations, parameters, activations


def check_memory(spec: SweepSpec, available: int | None = None) -> None:
    """ConfigError when a run's estimated memory (``estimated_bytes``, for the sweep's largest
    micro-batch) exceeds what the machine has (``machine_memory``, or ``available``)."""
    from ..run.devices import resolve_device
    from ..run.trainer import default_micro_batch_size

    memory = available if available is not None else machine_memory(spec.device)
    if memory is None:
        return
    micro = spec.run.micro_batch_size
    if micro is None:
        device = resolve_device(spec.device)
        micro = max(default_micro_batch_size(spec.experiment, b, device) for b in spec.batch_sizes)
    total, parameters, activations = estimated_bytes(spec, micro)
    if not math.isfinite(total) or total > memory:
        overrides = " ".join(
            f"{namespace}.{key}={value_text(value)}"
            for namespace, settings in (
                ("model", spec.model_overrides),
                ("data", spec.data_overrides),
            )
            for key, value in settings.items()
        )
        raise ConfigError(
            f"a run needs at least {format_bytes(total)} of memory ({parameters:,} parameters "
            f"with their gradients and {spec.base_recipe.optimizer}'s state, and "
            f"{format_bytes(activations)} of activations for a micro-batch of {micro}) but this "
            f"machine has {format_bytes(memory)}"
            + (f" (with --set {overrides})" if overrides else "")
            + ": use a smaller model or data setting, or a smaller run.micro_batch_size"
        )


def unsupported_precision(spec: SweepSpec) -> str | None:
    """Why this machine cannot run ``spec``'s model at its precision, or None. Recurrent layers
    are tried once at that precision on a tiny layer of the same kind: oneDNN on a CPU without
    bf16 instructions has no bf16 LSTM kernel, which a run would otherwise meet at its first step.
    """
    if spec.run.precision == "fp32":
        return None
    import torch
    from torch import nn

    from ..run.devices import resolve_device
    from ..run.trainer import autocast

    with torch.device("meta"):
        model = spec.experiment.build_model(spec.model_config)
    kinds = sorted({type(module) for module in model.modules() if isinstance(module, nn.RNNBase)},
                   key=lambda kind: kind.__name__)  # fmt: skip
    device = resolve_device(spec.device)
    for kind in kinds:
        layer = kind(4, 4, batch_first=True).to(device.torch_device)
        inputs = torch.randn(2, 3, 4, device=device.torch_device)
        try:
            with autocast(device, spec.run.precision):
                outputs, _ = layer(inputs)
            outputs.float().sum().backward()
        except RuntimeError as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            return (
                f"--set run.precision={spec.run.precision}: this machine's {device.kind} "
                f"kernels cannot run the model's {kind.__name__} layers at that precision "
                f"({reason}); use run.precision=fp32 here"
            )
    return None


def check_machine(spec: SweepSpec, available: int | None = None) -> None:
    """What a run needs against what this machine has: its memory (``check_memory``) and kernels
    for its precision (``unsupported_precision``); ConfigError naming the problem."""
    check_memory(spec, available)
    problem = unsupported_precision(spec)
    if problem:
        raise ConfigError(problem)


def describe_fields(fields: Mapping[str, Field]) -> list[str]:
    """``key: valid values (why)`` lines, for documentation and --help."""
    return [
        f"{key}: {rule.describe()}" + (f" ({rule.why})" if rule.why else "")
        for key, rule in fields.items()
    ]


def check_model_config(spec: SweepSpec) -> None:
    """Build the model on torch's meta device (no memory, no compute), so that a model config
    the model rejects is a usage error now rather than a traceback later."""
    import torch

    try:
        with torch.device("meta"):
            spec.experiment.build_model(spec.model_config)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as error:
        keys = " ".join(f"model.{key}={value}" for key, value in spec.model_overrides.items())
        where = f"--set {keys}" if keys else f"the {spec.preset!r} preset's model config"
        raise ConfigError(
            f"{where}: the {spec.experiment.name} model cannot be built with it "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
            f"its defaults are {dict(spec.experiment.model_defaults)}"
        ) from None
