"""The README's library example runs as written (so it cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import date

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs_and_says_what_it_claims():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "the README has one Python example; update this test with it"
    namespace = {"model": torch.nn.Linear(4, 2), "train_set": range(2 * 8192)}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    recipe = namespace["recipe"]
    assert recipe.lr == pytest.approx(0.1 * (8192 / 256) ** 0.5)  # "lr 0.566"
    assert round(recipe.lr, 3) == 0.566
    assert recipe.warmup_epochs == 10  # "warmup 10 epochs"
    scheduler = namespace["scheduler"]
    assert scheduler.last_epoch == date.total_steps(recipe, 2.0)
    groups = {group["name"]: group for group in namespace["optimizer"].param_groups}
    assert groups["no_weight_decay"]["weight_decay"] == 0  # "biases/norms: no weight decay"
