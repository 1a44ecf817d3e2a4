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


def readme_python_commands() -> list[str]:
    """The distinct scripts (``reproduce/run.py``) and modules (``-m date``) that the README runs
    with ``python``, in indented command lines and in inline code."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"(?:^ {4}|`)python (-m \S+|\S+\.py)", text, flags=re.MULTILINE)
    return sorted(set(found))


def test_every_readme_python_command_runs_in_the_activated_environment():
    """After `bin/setup`, `source .venv/bin/activate` (as the README says) makes every `python
    ...` command work: each script or module answers --help (one shell, so torch loads once per
    command, not per test)."""
    import subprocess
    import sys

    activate = Path(sys.prefix) / "bin" / "activate"
    assert activate.is_file(), f"tests must run inside the project's environment ({sys.prefix})"
    assert "source .venv/bin/activate" in README.read_text(encoding="utf-8")
    targets = readme_python_commands()
    assert {"-m date", "reproduce/run.py", "reproduce/report.py"} <= set(targets)
    script = f"source {activate}" + "".join(
        f" && echo '== {target}' && python {target} --help" for target in targets
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=README.parent, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert result.stdout.lower().count("usage") >= len(targets)
