"""Number and text formatting shared by the report's markdown (deterministic: fixed digits, no
scientific notation, no locale)."""

from __future__ import annotations

import json
import math
from typing import Any

from .record_files import is_finite_number

NOT_RECORDED = "not recorded"


def fmt_number(value: float | None, digits: int = 4, strip: bool = False) -> str:
    """`digits` significant digits in fixed point (never scientific); '—' for None.

    strip=True drops trailing zeros (for deltas, widths, counts); without it the zeros stay, so a
    mean shows the precision it is given with.
    """
    if value is None:
        return "—"
    # Round in scientific notation first so 0.000999999 (float noise) counts as 0.001.
    rounded = float(f"{value:.{digits - 1}e}")
    if rounded == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(rounded)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{rounded:.{decimals}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt_signed(value: float | None) -> str:
    """A delta with its sign ('+0.002', '-1.4', '0'); '—' for None."""
    if value is None:
        return "—"
    text = fmt_number(value, strip=True)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def direction_text(mode: str) -> str:
    """'higher is better' for mode max, 'lower is better' for min."""
    return "higher is better" if mode == "max" else "lower is better"


def markdown_text(text: str) -> str:
    """Make free text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def fmt_k(k: float) -> str:
    """The batch multiple k = batch / base batch, without trailing zeros ('2', '0.5')."""
    return f"{k:g}"


def fmt_value(value: Any) -> str:
    """A recipe field as the records state it (numbers to 6 digits, objects as JSON)."""
    if value is None:
        return NOT_RECORDED
    if is_finite_number(value) and not isinstance(value, int):
        return fmt_number(value, 6, strip=True)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
