"""reproduce/regress.py: rerun each experiment's short fixed-seed regression run and compare it
with its stored expectation, or regenerate the expectations (--update); the runs and the
comparison are ``sweep/regression.py``'s."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from ..run.registry import experiments
from ..sweep.regression import DEFAULT_SEEDS, EXPECTATIONS_DIR, check, deviation_rows, update


def main(argv: Sequence[str] | None = None) -> int:
    """reproduce/regress.py: check the accuracy expectations, or regenerate them (--update)."""
    parser = argparse.ArgumentParser(
        prog="reproduce/regress.py",
        description=(
            "Rerun each experiment's short fixed-seed regression run and compare its loss curve "
            "and final metric with tests/expectations/<experiment>.json; --update regenerates "
            "those files from several seeds (tolerance = max(k_sigma x seed std, floor))."
        ),
    )
    parser.add_argument("experiments", nargs="*", help="experiment names (default: all)")
    parser.add_argument("--update", action="store_true", help="regenerate the expectation files")
    parser.add_argument(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        help=f"seeds run by --update to measure the spread (default {DEFAULT_SEEDS})",
    )
    parser.add_argument(
        "--expectations", type=Path, default=EXPECTATIONS_DIR, help="expectation folder"
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    arguments = parser.parse_args(argv)
    registered = experiments()
    names = arguments.experiments or list(registered)
    unknown = [name for name in names if name not in registered]
    if unknown:
        print(
            f"error: unknown experiment(s) {', '.join(unknown)}; valid: {', '.join(registered)}",
            file=sys.stderr,
        )
        return 2
    if arguments.seeds < 2:
        print("error: --seeds must be at least 2 (a std needs two seeds)", file=sys.stderr)
        return 2
    if arguments.update:
        command = " ".join(["python reproduce/regress.py", *argv])
        for name in names:
            path = update(registered[name], arguments.seeds, command, arguments.expectations)
            print(f"wrote {path}")
        return 0
    results = []
    for name in names:
        result = check(registered[name], arguments.expectations)
        results.append(result)
    rows = [row for result in results for row in deviation_rows(result)]
    headers = ["experiment", "quantity", "expected", "got", "Δ", "tolerance", "|Δ|/tol", ""]
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    failed = [result for result in results if not result.passed]
    for result in failed:
        print("\n" + result.message(), file=sys.stderr)
    return 1 if failed else 0
