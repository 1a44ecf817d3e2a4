"""Which batch is worth it, from a short run at the base batch: see --help."""

import sys
from pathlib import Path

# Run as a script: make the repository importable without installing it.
# The script's own folder (sys.path[0]) holds reproduce/datasets, which would shadow the Hugging
# Face ``datasets`` package: the repository root takes its place.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from reproduce.harness.cli.advise import main  # noqa: E402 (after the path is set)

if __name__ == "__main__":
    sys.exit(main())
