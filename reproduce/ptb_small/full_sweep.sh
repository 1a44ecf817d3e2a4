#!/usr/bin/env bash
# The full ptb_small sweep: every scaling method at batch 20 ... 1280 (x64) on the whole of PTB
# for the recipe's 13 epochs, 3 seeds at the base batch, as two single-thread lanes so both cores
# of a 2-core machine stay busy; then every table and plot regenerated from the records.
# Order: the base batch first (the reference and the band), then x64 (the paper's claim), then the
# rest, so an interrupted sweep already holds the comparison that matters. Rerunning skips every
# recorded run; `--resume` continues a run from its checkpoint (written every 10 minutes).
# Every run processes the same 13 epochs of tokens whatever its batch, so on a CPU the sweep costs
# about 40 times one base run: `python reproduce/report.py results/ptb_small/full` prints the
# estimate for the missing runs from the recorded ones. On a GPU, one lane does it:
# `python reproduce/run.py ptb_small --preset full --device cuda`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
python=${PYTHON:-.venv/bin/python}
run() { "$python" -u reproduce/run.py ptb_small --preset full --resume "$@"; }
lane() {  # $1: the lane's methods at k > 1, $2: its methods at the base batch
  run --batch-sizes 20 --methods "$2"
  run --batch-sizes 1280 --methods "$1"
  run --batch-sizes 640,320,160,80,40 --methods "$1"
}
lane date,none,linear none,linear,sqrt,date &
lane sqrt,sqrt-nowarmup,linear-nowarmup linear-nowarmup,sqrt-nowarmup &
wait
"$python" reproduce/report.py results/ptb_small/full
