"""The experiment registry, built from the experiment folders under reproduce/.

Each folder with an ``experiment.py`` that defines ``EXPERIMENT`` (or ``EXPERIMENTS``, a tuple of
variants) registers it. Nothing is imported until the registry is asked for.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

from .experiment import Experiment

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).resolve().parents[1]


@functools.cache
def experiments() -> dict[str, Experiment]:
    """All registered experiments by name, in folder order."""
    found: dict[str, Experiment] = {}
    for folder in sorted(PACKAGE_ROOT.iterdir()):
        if folder == HARNESS or not (folder / "experiment.py").is_file():
            continue
        module = importlib.import_module(f"reproduce.{folder.name}.experiment")
        variants = getattr(module, "EXPERIMENTS", None) or (module.EXPERIMENT,)
        for experiment in variants:
            if experiment.name in found:
                raise ValueError(f"experiment {experiment.name!r} is registered twice")
            found[experiment.name] = experiment
    return found


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``, or a ValueError listing the valid names."""
    registered = experiments()
    if name not in registered:
        raise ValueError(f"unknown experiment {name!r}; valid choices: {', '.join(registered)}")
    return registered[name]
