"""Check the accuracy regression expectations, or regenerate them with --update: see --help."""

import sys
from pathlib import Path

# Run as a script: make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.harness.regression import main

if __name__ == "__main__":
    sys.exit(main())
