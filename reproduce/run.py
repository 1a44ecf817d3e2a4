"""Reproduce an experiment of "Large-Batch Training for LSTM and Beyond": see --help."""

import sys
from pathlib import Path

# Run as a script (python reproduce/run.py): make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
