"""plots/*.png: metric vs batch with the band, learning-rate schedules, learning curves.

Figure objects directly: no pyplot, no global backend switch; PNG through the Agg canvas, without
the "Software" metadata, so the bytes depend on the records and the matplotlib build only."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.io import atomic_write
from .aggregation import aggregate, batches_of, group_by_cell, methods_of, pooled_by_seed
from .band import ToleranceBand
from .formatting import direction_text
from .record_files import is_finite_number, sweep_info


def _figure(width: float = 7.0, height: float = 4.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Any, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    # No "Software" metadata: keeps the PNG independent of the matplotlib version string.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    atomic_write(Path(path), lambda stream: stream.write(buffer.getvalue()))
    return Path(path)


def _legend(axis: Any) -> None:
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small")


def _colors(methods: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {method: palette(index % 10) for index, method in enumerate(methods)}


def _log2_batch_axis(axis: Any, batches: Sequence[int]) -> None:
    from matplotlib.ticker import NullLocator

    axis.set_xscale("log", base=2)
    axis.set_xlim(min(batches) / 1.5, max(batches) * 1.5)
    axis.set_xticks(list(batches))
    axis.set_xticklabels([str(batch) for batch in batches])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xlabel("global batch size (examples, log2 scale)")


#: Plotted values spanning more than this ratio get a log axis (a blown-up run's perplexity in
#: the millions would otherwise flatten every other curve onto the axis).
LOG_AXIS_RATIO = 100.0


def log_axis_if_wide(axis: Any, values: Sequence[float]) -> bool:
    """Switch ``axis``'s y scale to log when the positive ``values`` span > LOG_AXIS_RATIO."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite or min(finite) <= 0 or max(finite) / min(finite) <= LOG_AXIS_RATIO:
        return False
    axis.set_yscale("log")
    return True


def plot_metric_vs_batch(
    records: Sequence[Mapping[str, Any]], band: ToleranceBand, path: str | os.PathLike[str]
) -> Path:
    """Final primary metric (mean ± sample std over seeds) vs batch per method, with the band.

    The shaded band is base mean ± band half-width; batches where every seed of a method diverged
    are marked with an x at the bottom of the axes.
    """
    info = sweep_info(records)
    methods = methods_of(records)
    colors = _colors(methods)
    figure = _figure()
    axis = figure.add_subplot()
    if band.mean is not None:
        axis.axhspan(
            band.mean - band.half_width,
            band.mean + band.half_width,
            color="0.85",
            label=f"base batch {band.base_batch_size}: mean ± band",
        )
        axis.axhline(band.mean, color="0.4", linewidth=1, linestyle="--")
    aggregates = aggregate(records)
    plotted: list[float] = []
    for index, method in enumerate(methods):
        cells = [agg for agg in aggregates if agg.method == method]
        measured = [agg for agg in cells if agg.mean is not None]
        plotted += [agg.mean for agg in measured]
        # Small horizontal offsets keep error bars of different methods apart at the same batch.
        shift = 2 ** ((index - (len(methods) - 1) / 2) * 0.03)
        if measured:
            axis.errorbar(
                [agg.batch_size * shift for agg in measured],
                [agg.mean for agg in measured],
                yerr=[agg.std or 0.0 for agg in measured],
                marker="o",
                capsize=3,
                color=colors[method],
                label=method,
            )
        diverged = [agg.batch_size for agg in cells if agg.mean is None and agg.n_diverged]
        if diverged:
            axis.scatter(
                [batch * shift for batch in diverged],
                [0.03] * len(diverged),
                marker="x",
                color=colors[method],
                transform=axis.get_xaxis_transform(),
                label=f"{method}: all seeds diverged",
            )
    _log2_batch_axis(axis, batches_of(records))
    log_note = ", log scale" if log_axis_if_wide(axis, plotted) else ""
    axis.set_ylabel(f"final test {info.primary_metric} ({direction_text(info.mode)}{log_note})")
    axis.set_title(f"{info.experiment} ({info.preset}): {info.primary_metric} vs batch size")
    axis.grid(True, alpha=0.3)
    _legend(axis)
    figure.tight_layout()
    return _save_png(figure, path)


def _representative(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The lowest-seed run, preferring ok runs (for single-curve plots)."""
    return min(runs, key=lambda run: (run["status"] != "ok", run["seed"]))


def _curve_runs(
    records: Sequence[Mapping[str, Any]],
) -> tuple[list[tuple[str, int, list[Mapping[str, Any]]]], list[Mapping[str, Any]]]:
    """Per method, its runs at its largest batch; plus the pooled base-batch runs."""
    info = sweep_info(records)
    groups = group_by_cell(records)
    per_method = []
    for method in methods_of(records):
        largest = max(b for m, b in groups if m == method)
        per_method.append((method, largest, groups[(method, largest)]))
    return per_method, pooled_by_seed(records, info.base_batch_size)


def _epochs(run: Mapping[str, Any]) -> list[float]:
    return [step / run["steps_per_epoch"] for step in run["curves"]["step"]]


def plot_lr_schedules(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Learning rate vs epoch: each method at its largest batch, and the base-batch schedule.

    epoch = step / steps_per_epoch. Curves of diverged runs stop at the divergence.
    """
    info = sweep_info(records)
    per_method, base_runs = _curve_runs(records)
    colors = _colors(methods_of(records))
    figure = _figure()
    axis = figure.add_subplot()
    if base_runs:
        run = _representative(base_runs)
        axis.plot(
            _epochs(run),
            run["curves"]["lr"],
            color="black",
            linestyle="--",
            label=f"base batch {info.base_batch_size}",
        )
    for method, batch, runs in per_method:
        if batch == info.base_batch_size:
            continue
        run = _representative(runs)
        status = ", diverged" if run["status"] == "diverged" else ""
        axis.plot(
            _epochs(run),
            run["curves"]["lr"],
            color=colors[method],
            label=f"{method}, batch {batch}{status}",
        )
    axis.set_xlabel("epoch (step / steps per epoch)")
    axis.set_ylabel("learning rate (per optimizer step)")
    axis.set_title(f"{info.experiment} ({info.preset}): learning-rate schedules")
    axis.grid(True, alpha=0.3)
    _legend(axis)
    figure.tight_layout()
    return _save_png(figure, path)


def _smooth(values: Sequence[float]) -> tuple[list[int], list[float]]:
    """Trailing moving average over ~2% of the curve; returns (indices, averages). Drops NaN/inf."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    keep = np.flatnonzero(np.isfinite(array))
    if keep.size == 0:
        return [], []
    finite = array[keep]
    window = max(1, finite.size // 50)
    kernel = np.ones(window) / window
    averaged = np.convolve(finite, kernel, mode="valid")
    return keep[window - 1 :].tolist(), averaged.tolist()


def _eval_points(run: Mapping[str, Any], metric: str) -> tuple[list[float], list[float], str]:
    evals = run["evals"]
    splits = sorted({entry.get("split", "eval") for entry in evals})
    split = "valid" if "valid" in splits else (splits[0] if splits else "eval")
    points = [
        (entry["epoch"], entry["metrics"][metric])
        for entry in evals
        if entry.get("split", "eval") == split and is_finite_number(entry["metrics"].get(metric))
    ]
    return [p[0] for p in points], [p[1] for p in points], split


def plot_learning_curves(
    records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]
) -> Path:
    """Left: evaluated primary metric vs epoch; right: smoothed training loss vs epoch.

    Each method at its largest batch (every seed, same color), plus the base batch dashed.
    Evaluations use the 'valid' split when present. Loss is smoothed with a trailing moving
    average over about 2% of the steps.
    """
    info = sweep_info(records)
    per_method, base_runs = _curve_runs(records)
    colors = _colors(methods_of(records))
    figure = _figure(11.0, 4.5)
    metric_axis, loss_axis = figure.subplots(1, 2)
    splits: set[str] = set()
    plotted: list[float] = []

    def draw(run: Mapping[str, Any], label: str | None, **style: Any) -> None:
        epochs, values, split = _eval_points(run, info.primary_metric)
        if epochs:
            splits.add(split)
            plotted.extend(values)
            metric_axis.plot(epochs, values, marker=".", label=label, **style)
        indices, losses = _smooth(run["curves"]["loss"])
        step_epochs = _epochs(run)
        loss_axis.plot([step_epochs[i] for i in indices], losses, label=label, **style)

    for index, run in enumerate(base_runs):
        label = f"base batch {info.base_batch_size}" if index == 0 else None
        draw(run, label, color="black", linestyle="--", linewidth=1)
    for method, batch, runs in per_method:
        if batch == info.base_batch_size:
            continue
        for index, run in enumerate(sorted(runs, key=lambda r: r["seed"])):
            label = f"{method}, batch {batch}" if index == 0 else None
            draw(run, label, color=colors[method], linewidth=1)
    split_text = "/".join(sorted(splits)) or "eval"
    metric_axis.set_xlabel("epoch")
    log_note = ", log scale" if log_axis_if_wide(metric_axis, plotted) else ""
    metric_axis.set_ylabel(
        f"{split_text} {info.primary_metric} ({direction_text(info.mode)}{log_note})"
    )
    metric_axis.set_title(f"{info.primary_metric} during training")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss (moving average over steps)")
    loss_axis.set_title("training loss")
    for axis in (metric_axis, loss_axis):
        axis.grid(True, alpha=0.3)
        _legend(axis)
    figure.suptitle(f"{info.experiment} ({info.preset}): largest batch per method vs base batch")
    figure.tight_layout()
    return _save_png(figure, path)
