"""Which batch is worth it, from a short run at the base batch (issue 15): see --help."""

import sys
from pathlib import Path

# Run as a script: make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.harness.advise_run import main_advise

if __name__ == "__main__":
    sys.exit(main_advise())
