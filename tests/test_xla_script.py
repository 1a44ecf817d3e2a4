"""The Cloud TPU path as far as the main environment can check it (no torch_xla here): the error
without torch_xla, and that the opt-in XLA stage's scripts parse. The stage itself
(xla/run_ci_stage.sh) needs its own ~3 GB environment and is not run by default."""

from __future__ import annotations

import importlib.util
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.harness.devices import resolve_device

ROOT = Path(__file__).resolve().parents[1]
XLA = ROOT / "xla"
SHELL_SCRIPTS = ("setup_env.sh", "run_ci_stage.sh")


@pytest.fixture
def smoke(monkeypatch):
    """xla/smoke.py as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("xla_smoke", XLA / "smoke.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being created.
    monkeypatch.setitem(sys.modules, "xla_smoke", module)
    spec.loader.exec_module(module)
    return module


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


def test_smoke_script_compiles_and_shows_help(tmp_path):
    py_compile.compile(str(XLA / "smoke.py"), cfile=str(tmp_path / "smoke.pyc"), doraise=True)
    # --help exits before any torch or torch_xla import.
    shown = subprocess.run(
        [sys.executable, str(XLA / "smoke.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--micro-batch" in shown.stdout


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
