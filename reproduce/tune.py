"""Tune an experiment's base recipe at its base batch: see --help."""

import sys
from pathlib import Path

# Run as a script: make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.harness.cli import main_tune

if __name__ == "__main__":
    sys.exit(main_tune())
