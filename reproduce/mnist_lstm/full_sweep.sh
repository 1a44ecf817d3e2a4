#!/usr/bin/env bash
# The command that made results/mnist_lstm/full: the full preset (all six methods, batch 128 to
# 8192, 3 seeds at the base batch), run as two single-thread lanes so both cores of a 2-core
# machine stay busy, then every table and plot regenerated from the records.
# On a bigger machine `python reproduce/run.py mnist_lstm --preset full` does the same in one lane.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
python=${PYTHON:-.venv/bin/python}
larger=256,512,1024,2048,4096,8192
run() { "$python" reproduce/run.py mnist_lstm --preset full "$@"; }
(
  run --batch-sizes 128 --methods none,linear,sqrt,date
  run --batch-sizes "$larger" --methods none,linear,linear-nowarmup
) &
(
  run --batch-sizes 128 --methods linear-nowarmup,sqrt-nowarmup
  run --batch-sizes "$larger" --methods sqrt,sqrt-nowarmup,date
) &
wait
"$python" reproduce/report.py results/mnist_lstm/full
