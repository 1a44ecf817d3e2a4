"""Device handling in one place: CPU, CUDA and Cloud TPU (torch_xla, PJRT).

torch_xla is imported only inside the XLA branch, so the suite never needs it otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import dataclass
from typing import Any

import torch

DEVICE_KINDS = ("cpu", "cuda", "tpu")


@dataclass
class Device:
    """A training device and the few operations that differ between backends."""

    kind: str
    torch_device: torch.device
    _xla: Any = None  # the torch_xla module, on the tpu path only

    def mark_step(self) -> None:
        """End of one training step: XLA cuts and runs its lazy graph here; a no-op elsewhere."""
        if self._xla is not None:
            self._xla.sync()

    def synchronize(self) -> None:
        """Wait for queued work, so wall-clock timings are honest."""
        if self.kind == "cuda":
            torch.cuda.synchronize(self.torch_device)
        elif self._xla is not None:
            self._xla.sync(wait=True)

    def describe(self) -> dict[str, Any]:
        """What the run record says about the hardware."""
        info: dict[str, Any] = {
            "device": self.kind,
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
        }
        if self.kind == "cuda":
            info["device_name"] = torch.cuda.get_device_name(self.torch_device)
            info["device_count"] = torch.cuda.device_count()
        elif self.kind == "tpu":
            info["device_name"] = str(self.torch_device)
            info["pjrt_device"] = os.environ.get("PJRT_DEVICE", "")
        else:
            info["device_name"] = info["cpu_model"]
        return info


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def check_device(kind: str) -> None:
    """ValueError saying what is missing when ``kind`` cannot run here, without starting it."""
    if kind not in DEVICE_KINDS:
        raise ValueError(f"unknown device {kind!r}; valid choices: {', '.join(DEVICE_KINDS)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device cuda: no CUDA device is visible to torch {torch.__version__} "
            f"(CUDA build: {torch.version.cuda or 'no'}); use --device cpu, or install a CUDA "
            "build of torch on a machine with a GPU"
        )
    if kind == "tpu" and importlib.util.find_spec("torch_xla") is None:
        raise ValueError(
            "--device tpu needs torch_xla, which is not installed in this environment: build "
            "its own environment with `bash xla/setup_env.sh` and run with .venv-xla/bin/python "
            "(README, 'Running on GPUs and Cloud TPU'); or use --device cpu"
        )


def resolve_device(kind: str, local_rank: int = 0) -> Device:
    """The device for ``kind`` (one of DEVICE_KINDS), or a ValueError saying what is missing."""
    if kind == "cpu":
        return Device("cpu", torch.device("cpu"))
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is visible to torch; use --device cpu")
        return Device("cuda", torch.device("cuda", local_rank))
    if kind == "tpu":
        try:
            import torch_xla
        except ImportError as error:
            raise ValueError(
                "--device tpu needs torch_xla (see docs/scaling.md, linked from the README, 'Cloud "
                f"TPU'); it is not installed in this environment ({error})"
            ) from error
        return Device("tpu", torch_xla.device(), _xla=torch_xla)
    raise ValueError(f"unknown device {kind!r}; valid choices: {', '.join(DEVICE_KINDS)}")
