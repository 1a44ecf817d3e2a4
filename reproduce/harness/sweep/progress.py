"""What a sweep shows while it runs: a run's label and result in a line, and the sweep's
progress with an ETA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .planning import PlannedRun
from .spec import SweepSpec


def run_label(spec: SweepSpec, run: PlannedRun) -> str:
    return f"{spec.experiment.name} {run.method} b={run.batch_size} seed={run.seed}"


def describe_result(spec: SweepSpec, status: str, final: Mapping[str, Any], divergence) -> str:
    name = spec.experiment.metric_for(spec.preset)[0]
    metric = final.get(name)
    summary = f"{name}={metric:.4g}" if metric is not None else ""
    if divergence:
        summary += f" ({divergence['reason']})"
    return f"{status} {summary}"


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class SweepProgress:
    """Runs done, diverged, running and failed, and an ETA from the examples-per-second of the
    runs this sweep has trained (every run reads ``epochs`` passes over the data, whatever its
    batch); with ``parallel`` workers the work left is shared among them."""

    total: int
    done: int = 0
    diverged: int = 0
    seconds: float = 0.0
    examples: float = 0.0
    remaining_examples: float = 0.0
    running: int = 0
    failed: int = 0
    parallel: int = 1

    def finished(self, status: str, examples: float, seconds: float) -> None:
        """A run ended (``status`` ok or diverged) after ``seconds`` of wall time (training and
        evaluation)."""
        self.done += 1
        self.diverged += status == "diverged"
        self.seconds += seconds
        self.examples += examples
        self.remaining_examples -= examples

    def gave_up(self, examples: float) -> None:
        """A run failed for good (a launcher's job, after its retries)."""
        self.failed += 1
        self.remaining_examples -= examples

    def line(self) -> str:
        text = f"sweep: {self.done}/{self.total} runs trained"
        if self.running:
            text += f", {self.running} running"
        if self.diverged:
            text += f", {self.diverged} diverged"
        if self.failed:
            text += f", {self.failed} failed"
        if self.done + self.failed < self.total and self.examples > 0 and self.seconds > 0:
            workers = max(1, min(self.parallel, self.total - self.done - self.failed))
            eta = self.remaining_examples * self.seconds / self.examples / workers
            text += f", about {format_duration(eta)} left"
        return text
