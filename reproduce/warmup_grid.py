"""What decides DATE vs sqrt at the claim's scale: the warmup grid (see --help).

One process, one run at a time, one thread (OMP_NUM_THREADS=1 unless set): rerun the same command
to resume an interrupted grid."""

import os
import sys
from pathlib import Path

# Before torch is imported: one intra-op thread, so the grid takes one core of a shared machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Run as a script: make the repository importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.harness.cli.warmup_grid import main

if __name__ == "__main__":
    sys.exit(main())
