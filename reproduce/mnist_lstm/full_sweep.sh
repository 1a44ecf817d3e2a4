#!/usr/bin/env bash
# The command that made results/mnist_lstm/full: the full preset (all six methods, batch 128 to
# 8192, 3 seeds at the base batch), run as two single-thread lanes so both cores of a 2-core
# machine stay busy, then every table and plot regenerated from the records.
# The base batch first (its 3 seeds set the tolerance band), then the largest batches, then the
# rest: an interrupted sweep already has the x64 comparison. Rerunning skips every recorded run
# and continues an interrupted one from its checkpoint (--resume).
# On a bigger machine `python reproduce/run.py mnist_lstm --preset full` does it all in one lane.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
python=${PYTHON:-.venv/bin/python}
run() { "$python" -u reproduce/run.py mnist_lstm --preset full --out results/mnist_lstm/full --resume "$@"; }
lane() {  # $1: the lane's methods at k > 1, $2: its methods at the base batch
  run --batch-sizes 128 --methods "$2"
  run --batch-sizes 8192,4096 --methods "$1"
  run --batch-sizes 2048,1024,512,256 --methods "$1"
}
lane none,linear,linear-nowarmup none,linear,sqrt,date &
lane sqrt,sqrt-nowarmup,date linear-nowarmup,sqrt-nowarmup &
wait
"$python" reproduce/report.py results/mnist_lstm/full
