"""The Cloud TPU path as far as the main environment can check it (no torch_xla here): the errors
without torch_xla or under torchrun, that the opt-in XLA stage's scripts parse, the launcher's
argument check, and the pure parts of the multi-device comparison. The stage itself
(xla/run_ci_stage.sh) needs its own ~7 GB environment and is not run by default."""

from __future__ import annotations

import importlib.util
import math
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from reproduce.harness.run.devices import Device, resolve_device
from reproduce.harness.run.distributed import DistributedContext, XlaReplicas, init_distributed

ROOT = Path(__file__).resolve().parents[1]
XLA = ROOT / "xla"
SHELL_SCRIPTS = ("setup_env.sh", "run_ci_stage.sh")
PYTHON_SCRIPTS = {
    "smoke.py": "--micro-batch",
    "launch.py": "--device tpu",
    "multi_device_check.py": "--devices",
}


def load_script(name: str, monkeypatch) -> Any:
    """xla/NAME as a module (the scripts are not part of a package)."""
    spec = importlib.util.spec_from_file_location(f"xla_{name[:-3]}", XLA / name)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being created.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def smoke(monkeypatch):
    return load_script("smoke.py", monkeypatch)


def test_tpu_without_torch_xla_names_it_and_points_to_the_readme(monkeypatch):
    # None in sys.modules makes the import fail even where torch_xla happens to be installed.
    monkeypatch.setitem(sys.modules, "torch_xla", None)
    with pytest.raises(ValueError, match="torch_xla") as error:
        resolve_device("tpu")
    assert "README" in str(error.value)


@pytest.mark.parametrize("name", SHELL_SCRIPTS)
def test_shell_script_parses(name):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash on this machine")
    subprocess.run([bash, "-n", str(XLA / name)], check=True)


@pytest.mark.parametrize("name", sorted(PYTHON_SCRIPTS))
def test_python_script_compiles_and_shows_help(name, tmp_path):
    py_compile.compile(str(XLA / name), cfile=str(tmp_path / "script.pyc"), doraise=True)
    # --help exits before any torch_xla import.
    shown = subprocess.run(
        [sys.executable, str(XLA / name), "--help"], capture_output=True, text=True, check=True
    )
    assert PYTHON_SCRIPTS[name] in shown.stdout


def test_tpu_under_torchrun_points_to_the_xla_launcher(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"xla/launch\.py"):
        init_distributed("tpu")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["reproduce/run.py", "mnist_lstm", "--device", "tpu"], None),
        (["reproduce/run.py", "mnist_lstm", "--device=tpu", "--quiet"], None),
        (["reproduce/run.py", "mnist_lstm"], "--device tpu"),  # every replica on the CPU
        (["reproduce/run.py", "mnist_lstm", "--device", "cpu"], "--device tpu"),
        (["reproduce/run.py", "mnist_lstm", "--device", "tpu", "--device", "cpu"], "once"),
        (["--device", "tpu"], "usage"),
        (["no/such/script.py", "--device", "tpu"], "no such script"),
    ],
)
def test_launcher_checks_its_arguments(argv, problem, monkeypatch):
    monkeypatch.chdir(ROOT)
    found = load_script("launch.py", monkeypatch).check_arguments(argv)
    assert found is None if problem is None else problem in found


def test_launcher_refuses_a_run_off_the_xla_device():
    # Exit code 2 before torch_xla is imported (it is not installed here).
    result = subprocess.run(
        [sys.executable, str(XLA / "launch.py"), "reproduce/run.py", "mnist_lstm"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "--device tpu" in result.stderr


def test_single_process_context_leaves_the_model_alone():
    context = DistributedContext()
    module = nn.Linear(2, 1)
    assert context.data_parallel(module, Device("cpu", torch.device("cpu"))) is module
    with context.exclusive():
        context.reduce_gradients(module)
    assert context.mean(1.5) == 1.5 and context.any(True) and context.broadcast_int(7) == 7


class FakeXla(XlaReplicas):
    """XlaReplicas whose collective is played by the test: the other ranks' rows are given."""

    def _gather(self, values, dtype):
        rows = torch.tensor(self.__dict__["others"], dtype=dtype)
        rows[self.rank] = torch.tensor(values, dtype=dtype)
        return rows


def fake_xla(others: list[list[float]]) -> FakeXla:
    context = FakeXla(rank=0, world_size=len(others))
    object.__setattr__(context, "others", others)
    return context


def test_xla_mean_keeps_float64_precision_through_float32_words():
    value, other = 2.302585092994046, 2.302585092994057  # differ beyond float32's precision
    high = float(torch.tensor(other, dtype=torch.float32))
    mean = fake_xla([[0.0, 0.0], [high, other - high]]).mean(value)
    assert mean == pytest.approx((value + other) / 2, rel=1e-15, abs=0)
    assert not math.isfinite(fake_xla([[0.0, 0.0], [math.inf, 0.0]]).mean(1.0))
    assert math.isnan(fake_xla([[0.0, 0.0], [0.0, 0.0]]).mean(math.nan))


def test_xla_flags_and_integers_come_from_the_right_rank():
    assert fake_xla([[0], [1]]).any(False) and not fake_xla([[0], [0]]).any(False)
    assert fake_xla([[0], [5]]).broadcast_int(3) == 3  # rank 0's value
    with pytest.raises(ValueError, match="int32"):
        fake_xla([[0], [0]]).broadcast_int(2**40)


def record(losses: list[float], world_size: int, accuracy: float = 0.5) -> dict:
    return {
        "world_size": world_size,
        "status": "ok",
        "total_steps": len(losses),
        "curves": {"step": list(range(len(losses))), "lr": [0.1] * len(losses), "loss": losses},
        "final": {"accuracy": accuracy},
    }


def test_multi_device_comparison(monkeypatch):
    check = load_script("multi_device_check.py", monkeypatch)
    one = record([2.30, 2.25, 2.20], 1)
    assert (
        check.compare_records(one, record([2.30, 2.25 * (1 + 5e-5), 2.20], 2), 2, 1e-4, 5e-3)[1]
        == []
    )
    _, problems = check.compare_records(
        one, record([2.30, 2.25 * (1 + 5e-4), 2.20], 2), 2, 1e-4, 5e-3
    )
    assert len(problems) == 1 and problems[0].startswith("step 1: loss")
    assert check.compare_records(one, record([2.30, 2.25, 2.20], 1), 2, 1e-4, 5e-3)[1]
    assert check.compare_records(one, record([2.30, math.nan, 2.20], 2), 2, 1e-4, 5e-3)[1]
    assert check.compare_records(one, record([2.30, 2.25, 2.20], 2, 0.51), 2, 1e-4, 5e-3)[1]


def test_smoke_comparison_flags_a_loss_beyond_tolerance(smoke):
    cpu = [2.30, 2.25, 2.20]
    _, agree = smoke.losses_agree(cpu, [2.30, 2.25 * (1 + 5e-5), 2.20], 3, 1e-4, 1e-6)
    assert agree
    rows, agree = smoke.losses_agree(cpu, [2.30, 2.25 * (1 + 5e-4), 2.20], 3, 1e-4, 1e-6)
    assert not agree and rows[1][-1] == "MISMATCH"
    # A diverged XLA run (NaN) or a shorter one never passes.
    assert not smoke.losses_agree(cpu, [2.30, float("nan"), 2.20], 3, 1e-4, 1e-6)[1]
    assert not smoke.losses_agree(cpu, cpu[:2], 3, 1e-4, 1e-6)[1]


def test_smoke_metric_comparison(smoke):
    assert smoke.metrics_agree({"accuracy": 0.5}, {"accuracy": 0.504}, 5e-3)[1]
    assert not smoke.metrics_agree({"accuracy": 0.5}, {"accuracy": 0.51}, 5e-3)[1]
    assert not smoke.metrics_agree({"accuracy": 0.5}, {"loss": 0.5}, 5e-3)[1]
