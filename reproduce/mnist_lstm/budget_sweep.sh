#!/usr/bin/env bash
# The command that makes results/mnist_lstm/budget: the full sweep (six methods, batch 128 to
# 8192) at the epoch budgets of the `budget` preset, each with the base lr tuned at batch 128 for
# that budget (validation only), run as two single-thread lanes so both cores of a 2-core machine
# stay busy. Per budget: the lr grid (two points a lane), the tuning summary, then the sweep (the
# base batch first, then the largest batches), then the next budget. Rerunning skips every
# recorded run and continues an interrupted one from its checkpoint (--resume; written every 10
# minutes), so an interrupted sweep continues where it stopped. BUDGETS="10 20" runs part of the grid.
# DECISIVE_ONLY="40 80" runs only the cells that decide the claim at those budgets (the base
# batch, x16 and x64 with date, linear and sqrt): a 40-epoch budget costs about 4x a 10-epoch one.
# The published records: BUDGETS="10 20", then BUDGETS=40 DECISIVE_ONLY=40, then x8 and x32 for
# the steps-to-result curve at E = 40 in a third process:
#   python reproduce/run.py mnist_lstm --preset budget --out results/mnist_lstm/budget \
#     --set epochs=40 --batch-sizes 4096,1024 \
#     --methods date,linear,sqrt
# SEEDS=3 gives every decisive cell 3 seeds (the preset: 3 at the base batch, 2 elsewhere); LANES=1
# runs everything in one single-thread lane, leaving the other core free. The longer budgets:
#   LANES=1 SEEDS=3 BUDGETS="40 80 160" DECISIVE_ONLY="40 80 160" reproduce/mnist_lstm/budget_sweep.sh
# (E = 40 was published with 2 seeds: this adds the third and skips what is recorded.)
# On a bigger machine `python reproduce/run.py mnist_lstm --preset budget --out results/mnist_lstm/budget`
# does it all in one lane.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
python=${PYTHON:-.venv/bin/python}
budgets=${BUDGETS:-"10 20 40 80 160"}
decisive_only=${DECISIVE_ONLY:-""}
lanes=${LANES:-2}
seeds=()
if [[ -n "${SEEDS:-}" ]]; then seeds=(--seeds "$SEEDS"); fi
# Published records: --out results/... (a run without --out writes to runs/, see the README).
run() {
  "$python" -u reproduce/run.py mnist_lstm --preset budget --out results/mnist_lstm/budget --resume "$@"
}
tune() {
  "$python" -u reproduce/tune.py mnist_lstm --preset budget --out results/mnist_lstm/budget \
    --resume "$@"
}
lane() {  # $1: budget, $2: the lane's methods at the base batch, $3: its methods at k > 1
  run --set "epochs=$1" --batch-sizes 128 --methods "$2"
  run --set "epochs=$1" --batch-sizes 8192,4096 --methods "$3"
  run --set "epochs=$1" --batch-sizes 2048,1024,512,256 --methods "$3"
}
decisive() {  # $1: budget; the cells that decide the claim, x64 first, in one lane
  run --set "epochs=$1" --batch-sizes 128 --methods linear,sqrt,date "${seeds[@]}"
  run --set "epochs=$1" --batch-sizes 8192 --methods date,sqrt,linear "${seeds[@]}"
  run --set "epochs=$1" --batch-sizes 2048 --methods date,sqrt,linear "${seeds[@]}"
}
for budget in $budgets; do
  if [[ $lanes == 1 ]]; then
    for lr in 0.05 0.1 0.2 0.4; do tune --set "epochs=$budget" --set "lr=$lr"; done
    tune --set "epochs=$budget"
    if [[ " $decisive_only " == *" $budget "* ]]; then decisive "$budget"; else
      all=none,linear,linear-nowarmup,sqrt,sqrt-nowarmup,date; lane "$budget" "$all" "$all"
    fi
    continue
  fi
  { tune --set "epochs=$budget" --set lr=0.05; tune --set "epochs=$budget" --set lr=0.2; } &
  { tune --set "epochs=$budget" --set lr=0.1; tune --set "epochs=$budget" --set lr=0.4; } &
  wait
  tune --set "epochs=$budget"  # every point recorded: writes the budget's tuning summary
  if [[ " $decisive_only " == *" $budget "* ]]; then
    { run --set "epochs=$budget" --batch-sizes 128 --methods linear,sqrt,date "${seeds[@]}"
      run --set "epochs=$budget" --batch-sizes 8192 --methods date "${seeds[@]}"
      run --set "epochs=$budget" --batch-sizes 2048 --methods date,linear "${seeds[@]}"; } &
    { run --set "epochs=$budget" --batch-sizes 8192 --methods linear,sqrt "${seeds[@]}"
      run --set "epochs=$budget" --batch-sizes 2048 --methods sqrt "${seeds[@]}"; } &
  else
    lane "$budget" none,linear,sqrt,date none,linear,linear-nowarmup &
    lane "$budget" linear-nowarmup,sqrt-nowarmup sqrt,sqrt-nowarmup,date &
  fi
  wait
done
"$python" reproduce/report.py results/mnist_lstm/budget
