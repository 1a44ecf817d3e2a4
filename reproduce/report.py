"""Regenerate every table and plot from the run records: see --help."""

import sys
from pathlib import Path

# Run as a script: make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.harness.cli import main_report

if __name__ == "__main__":
    sys.exit(main_report())
