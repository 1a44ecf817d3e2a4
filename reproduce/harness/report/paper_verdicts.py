"""The paper diff: each target and claim against our runs, with a verdict, and each method's
largest batch against the base-batch band (paper_diff.md / paper_diff.json). Targets and claims
come from the experiment and carry their source (reproduce/harness/core/targets.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from ..core.targets import Claim, Target
from .aggregation import batches_of, group_by_cell, mean_std, methods_of, ok_values, pooled_by_seed
from .band import ToleranceBand
from .formatting import fmt_k, fmt_number, fmt_signed, markdown_text
from .record_files import SweepInfo, divergence_text, sweep_info

VERDICTS = (
    "reproduced",  # meets the reference value outright (>= for max, <= for min)
    "within tolerance",  # meets it only thanks to the tolerance
    "missed",  # does not meet it, or a seed diverged
    "no verified reference",  # the reference is unknown or unverified; ours is still shown
    "not run",  # no record at the batch the reference applies to
    "not applicable",  # a target of the full recipe, and these records are of a reduced preset
    "not measured",  # runs exist but none recorded the reference's metric
)
#: The preset whose recipe the experiments' targets are references for. The others (smoke,
#: quick) shorten the budget or the data, so a target is shown there but never judged; claims,
#: which compare a preset with its own base batch, are judged at every preset.
TARGET_PRESET = "full"


def _verdict(
    reference: Target,
    ours: float | None,
    n: int,
    n_diverged: int,
    n_values: int,
    divergences: Sequence[str] = (),
) -> tuple[str, str]:
    """(verdict, note) for one comparison; see VERDICTS. The note gives the recorded reason of
    each divergence (`divergences`, from divergence_text)."""
    notes = []
    if n and n_diverged:
        why = f" ({'; '.join(divergences)})" if divergences else ""
        notes.append(f"{n_diverged}/{n} runs diverged{why}")
    if n and n_values < n - n_diverged:
        notes.append(f"{n - n_diverged - n_values} ok runs lack {reference.metric!r}")
    note = "; ".join(notes)
    if not reference.verified:
        return "no verified reference", note
    if n == 0:
        return "not run", note
    if n_diverged:
        # A divergence is a loss at that batch whatever the surviving seeds reached.
        return "missed", note
    if ours is None:
        return "not measured", note
    if reference.met_outright(ours):
        return "reproduced", note
    if reference.met(ours):
        return "within tolerance", note
    return "missed", note


def _row(
    kind: str,
    what: str,
    reference: Target,
    method: str,
    batch: int,
    base: int,
    runs: Sequence[Mapping[str, Any]],
    extra_note: str = "",
) -> dict[str, Any]:
    values = ok_values(runs, reference.metric)
    ours, ours_std = mean_std(values)
    diverged = sorted((run for run in runs if run["status"] == "diverged"), key=lambda r: r["seed"])
    n_diverged = len(diverged)
    reasons = [divergence_text(run) for run in diverged]
    verdict, note = _verdict(reference, ours, len(runs), n_diverged, len(values), reasons)
    delta = None if ours is None or reference.value is None else ours - reference.value
    return {
        "kind": kind,
        "what": what,
        "metric": reference.metric,
        "mode": reference.mode,
        "method": method,
        "batch_size": batch,
        "k": batch / base,
        "target": reference.value,
        "tolerance": reference.tolerance,
        "source": reference.source,
        "status": reference.status,
        "ours": ours,
        "ours_std": ours_std,
        "n": len(runs),
        "n_diverged": n_diverged,
        "n_values": len(values),
        "seeds": sorted(run["seed"] for run in runs),
        "delta": delta,
        "verdict": verdict,
        "note": "; ".join(part for part in (extra_note, note) if part),
    }


def _check_consistent(metric: str, mode: str, info: SweepInfo, what: str) -> None:
    if metric == info.primary_metric and mode != info.mode:
        raise ValueError(
            f"{what}: mode {mode!r} contradicts the records' mode {info.mode!r} for {metric!r}"
        )


def paper_diff(
    records: Sequence[Mapping[str, Any]],
    targets: Sequence[Target],
    claims: Sequence[Claim],
    band: ToleranceBand,
) -> list[dict[str, Any]]:
    """One row per target, per claim, and per (method, largest batch) against the band.

    Target rows: a target with batch_size None (or equal to the base batch) is checked on the
    base batch, pooled over methods by seed; otherwise once per method run at that batch (or only
    for target.method when set). Claim rows: the reference is the suite's base-batch mean with the
    band as tolerance, checked for claim.method at base * scale_factor ("not run" if that batch is
    missing). Band rows (kind "band"): each method at its largest batch vs the band, showing where
    baselines lose; they are informative and do not count as missed targets.

    Verdicts: "reproduced" = meets the reference value outright (>= for max, <= for min);
    "within tolerance" = only with the tolerance; "missed" otherwise or if any seed diverged;
    "no verified reference" when the reference is unknown/unverified (ours is still reported);
    "not run" / "not measured" when there is nothing to compare; "not applicable" for every
    target row when the records are not of TARGET_PRESET.

    Records of a proxy preset (their ``proxy`` field): every target row is "not applicable" with
    no value of ours (another task stands in for the paper's), and every row carries the proxy's
    label as ``proxy``, which ``verdict_cell`` shows beside the verdict.
    """
    info = sweep_info(records)
    base = info.base_batch_size
    if band.metric != info.primary_metric or band.base_batch_size != base:
        raise ValueError("band was not computed from these records' primary metric and base batch")
    groups = group_by_cell(records)
    rows: list[dict[str, Any]] = []

    reduced = info.preset != TARGET_PRESET
    for target in targets:
        _check_consistent(target.metric, target.mode, info, f"target {target.source!r}")
        what = target.metric + (f": {target.note}" if target.note else "")
        batch = target.batch_size or base
        if info.proxy is not None:  # another task: the reference is never set against it
            method = target.method or "—"
            target_rows = [_row("target", what, target, method, batch, base, [])]
        elif batch == base:
            runs = pooled_by_seed(records, base)
            method = target.method or "any (k=1)"
            target_rows = [_row("target", what, target, method, base, base, runs)]
        else:
            methods = [target.method] if target.method else [m for m, b in groups if b == batch]
            target_rows = [
                _row("target", what, target, method, batch, base, groups.get((method, batch), []))
                for method in methods or ["—"]
            ]
        for row in target_rows:
            if info.proxy is not None:
                row["verdict"] = "not applicable"
                row["note"] = (
                    "a reference for the paper's setting, never compared with these records of "
                    "a proxy (see the proxy's setting above)"
                )
            elif reduced:
                row["verdict"] = "not applicable"
                row["note"] = "; ".join(
                    part
                    for part in (
                        f"a reference for the {TARGET_PRESET} preset's recipe; these runs are "
                        f"the reduced {info.preset!r} preset",
                        row["note"],
                    )
                    if part
                )
        rows.extend(target_rows)

    baseline_source = f"this suite: base batch {base}, {band.n_seeds} seed(s)"
    if band.mean is not None:
        baseline = Target(
            metric=band.metric,
            value=band.mean,
            mode=band.mode,
            tolerance=band.half_width,
            source=baseline_source,
            status="suite baseline",
            note="base-batch mean; tolerance = band",
        )
    else:
        baseline = None

    for claim in claims:
        _check_consistent(claim.metric, claim.mode, info, f"claim {claim.text!r}")
        if claim.metric != band.metric:
            # a reduced preset judged by another metric (Preset.primary_metric): not its claim
            reference = Target(
                metric=claim.metric,
                value=None,
                mode=claim.mode,
                tolerance=band.half_width,
                source=claim.source,
                status=claim.status,
            )
            row = _row(
                "claim", claim.text, reference, claim.method, base * claim.scale_factor, base, []
            )
            row["verdict"] = "not applicable"
            row["note"] = (
                f"the claim is about {claim.metric!r}; the {info.preset!r} preset's records are "
                f"judged by {band.metric!r}"
            )
            row["scale_factor"] = claim.scale_factor
            rows.append(row)
            continue
        batch = base * claim.scale_factor
        # With no base-batch mean the value is None, which makes the reference unverified.
        reference = Target(
            metric=claim.metric,
            value=None if baseline is None else baseline.value,
            mode=claim.mode,
            tolerance=band.half_width,
            source=claim.source,
            status=claim.status,
        )
        extra = "" if baseline is not None else "no ok base-batch run, so no baseline"
        row = _row(
            "claim",
            claim.text,
            reference,
            claim.method,
            batch,
            base,
            groups.get((claim.method, batch), []),
            extra,
        )
        row["scale_factor"] = claim.scale_factor
        row["baseline_source"] = baseline_source
        rows.append(row)

    largest_overall = max(batches_of(records))
    for method in methods_of(records):
        largest = max(b for m, b in groups if m == method)
        if largest == base:
            continue
        reference = baseline or Target(
            metric=band.metric,
            value=None,
            mode=band.mode,
            tolerance=band.half_width,
            source=baseline_source,
            status="unverified",
        )
        note = "" if largest == largest_overall else f"not run at batch {largest_overall}"
        what = f"keeps the base-batch {band.metric} (band)"
        rows.append(
            _row("band", what, reference, method, largest, base, groups[(method, largest)], note)
        )
    if info.proxy is not None:
        for row in rows:
            row["proxy"] = info.proxy["label"]
    return rows


def verdict_cell(row: Mapping[str, Any]) -> str:
    """A paper-diff row's verdict as shown: with the proxy label beside it when the records are
    of a proxy preset (the row's ``proxy``), so that a proxy's verdict is never read as the
    paper's."""
    return f"{row['verdict']} ({row['proxy']})" if row.get("proxy") else row["verdict"]


def missed_verified(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many target and claim rows (not informative band rows) were missed."""
    return sum(row["kind"] in ("target", "claim") and row["verdict"] == "missed" for row in rows)


#: The verdicts that compare ours with a verified reference value; the others say why no
#: comparison was made, so they count neither as met nor as missed.
JUDGED_VERDICTS = ("reproduced", "within tolerance", "missed")


def verdict_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many target and claim rows (not band rows) have each verdict, for every verdict."""
    counts = {verdict: 0 for verdict in VERDICTS}
    for row in rows:
        if row["kind"] in ("target", "claim"):
            counts[row["verdict"]] += 1
    return counts


def judged_headline(counts: Mapping[str, int], proxy_label: str | None = None) -> str:
    """One honest sentence of verdict counts (from ``verdict_counts``): how many targets and claims
    were judged at all, why the others were not, and how the judged ones fared. Zero missed out of
    zero judged reads as nothing judged, never as a pass. With ``proxy_label`` (the records are a
    proxy preset's), the sentence ends with it."""
    if proxy_label is not None:
        return f"{judged_headline(counts).rstrip('.')}; {proxy_label}."
    total = sum(counts.get(verdict, 0) for verdict in VERDICTS)
    if total == 0:
        return "No targets or claims to judge."
    judged = sum(counts.get(verdict, 0) for verdict in JUDGED_VERDICTS)
    unjudged = ", ".join(
        f"{counts[verdict]} {verdict}"
        for verdict in VERDICTS
        if verdict not in JUDGED_VERDICTS and counts.get(verdict, 0)
    )
    text = f"Targets and claims judged: **{judged} of {total}**"
    if unjudged:
        text += f" ({unjudged})"
    if judged == 0:
        return text + ": nothing was judged, so nothing is reproduced or missed."
    return (
        f"{text}: {counts.get('reproduced', 0)} reproduced, "
        f"{counts.get('within tolerance', 0)} within tolerance, "
        f"**{counts.get('missed', 0)} missed**."
    )


def ours_cell(row: Mapping[str, Any]) -> str:
    """Our value of a paper-diff row: 'mean ± std (n=ok seeds)', 'not run' or 'diverged (n/m)';
    'not compared' for a paper reference beside a proxy's records."""
    if row.get("proxy") and row["kind"] == "target":
        return "not compared"
    if row["n"] == 0:
        return "not run"
    if row["ours"] is None:
        if row["n_diverged"] == row["n"]:
            return f"diverged ({row['n_diverged']}/{row['n']})"
        return "not measured"
    text = fmt_number(row["ours"])
    if row["ours_std"] is not None:
        text += f" ± {fmt_number(row['ours_std'], 2)}"
    text += f" (n={row['n_values']})"
    if row["n_diverged"]:
        text += f"; diverged ({row['n_diverged']}/{row['n']})"
    return text


def target_cell(row: Mapping[str, Any]) -> str:
    """The reference of a paper-diff row: 'value ± tolerance (mode)', or 'unknown'."""
    if row["target"] is None:
        return "unknown"
    text = fmt_number(row["target"])
    if row["tolerance"]:
        text += f" ± {fmt_number(row['tolerance'], strip=True)}"
    return f"{text} ({row['mode']})"


def paper_diff_markdown(
    rows: Sequence[Mapping[str, Any]], band: ToleranceBand | None = None
) -> str:
    """Markdown of paper_diff rows: targets and claims first, then the largest-batch band rows."""
    lines: list[str] = []
    main = [row for row in rows if row["kind"] in ("target", "claim")]
    band_rows = [row for row in rows if row["kind"] == "band"]
    lines.append("## Targets and claims\n")
    proxy_label = next((row["proxy"] for row in rows if row.get("proxy")), None)
    if main:
        lines.append(judged_headline(verdict_counts(rows), proxy_label) + "\n")
        table = [
            [
                row["kind"],
                markdown_text(row["what"]),
                str(row["batch_size"]),
                markdown_text(row["method"]),
                target_cell(row),
                markdown_text(row["source"]),
                row["status"],
                ours_cell(row),
                fmt_signed(row["delta"]),
                verdict_cell(row),
                markdown_text(row["note"]),
            ]
            for row in main
        ]
        headers = ["kind", "what", "batch", "method", "target", "source", "status", "ours"]
        headers += ["Δ (ours − target)", "verdict", "note"]
        lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    else:
        lines.append("No targets or claims were given for this experiment.")
    lines.append("\n## Largest batch of each method vs the base-batch band\n")
    if band is not None:
        lines.append(band.describe() + "\n")
    if band_rows:
        table = [
            [
                row["method"],
                str(row["batch_size"]),
                fmt_k(row["k"]),
                ours_cell(row),
                target_cell(row),
                fmt_signed(row["delta"]),
                verdict_cell(row),
                markdown_text(row["note"]),
            ]
            for row in band_rows
        ]
        headers = ["method", "batch", "k", "ours", "base mean ± band", "Δ", "verdict", "note"]
        lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    else:
        lines.append("Only the base batch was run: nothing to compare with the band.")
    lines.append("\n## Verdicts\n")
    lines.append(
        "- **reproduced**: ours meets the reference value outright (>= for max, <= for min).\n"
        "- **within tolerance**: ours meets it only with the tolerance (target's own tolerance, "
        "or the band for claims).\n"
        "- **missed**: otherwise, or at least one seed diverged.\n"
        "- **no verified reference**: the reference value is unknown or unverified; ours is "
        "shown anyway.\n"
        "- **not run** / **not measured**: no record at that batch / no record has the metric."
        "\n- **not applicable**: a reference for the full preset's recipe, shown beside runs "
        "of a reduced preset (smoke, quick) but not judged."
    )
    if proxy_label is not None:
        lines.append(
            f"- **({proxy_label})**: beside every verdict of a proxy preset's records, a small "
            "stand-in for the paper's setting: claims are judged at the proxy's own base batch "
            "and scale factors, and the paper's reference values are listed but never compared."
        )
    return "\n".join(lines) + "\n"
