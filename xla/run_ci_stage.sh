#!/usr/bin/env bash
# Opt-in CI stage for the Cloud TPU path, run on CPU through PJRT's CPU client. Not part of the
# default CI: the first run downloads ~4 GB (torch 2.9.1 from PyPI is the CUDA build) into a
# ~7.2 GB .venv-xla. Three checks:
#   1. xla/smoke.py: the trainer on 1 XLA device matches plain CPU step by step (and resumes);
#   2. xla/multi_device_check.py: 2 XLA devices (xla/launch.py) match 1 at the same global batch;
#   3. xla/smoke.py on imagenet_resnet50's smoke preset (torchvision's ResNet-50, the shipped
#      images at 64 px, LARS, micro-batches of 2): compiling its graphs on PJRT's CPU client
#      takes minutes. Its losses drift apart faster than the LSTM's (batch norm over
#      micro-batches of 2, LARS at lr 4): within 9e-5 after 5 steps in the run that set these
#      tolerances, so --rtol 1e-3 (a wrong normalization or gradient moves them by 1e-2 or
#      more). Accuracy over 10 images moves in steps of 0.1, so --metric-atol 0.02 still asks
#      for the same top-1 and top-5, and lets the final eval loss (4.3) differ by 0.5%.
#   bash xla/run_ci_stage.sh [smoke.py arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XLA_VENV:-$ROOT/.venv-xla}"

bash "$ROOT/xla/setup_env.sh"
# One thread for eager CPU ops: the comparison is tiny, and CI machines have 2 cores.
cd "$ROOT"
export PJRT_DEVICE=CPU OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
"$VENV/bin/python" xla/smoke.py "$@"
"$VENV/bin/python" xla/multi_device_check.py --devices "${XLA_CHECK_DEVICES:-2}"
"$VENV/bin/python" xla/smoke.py --experiment imagenet_resnet50 --micro-batch 2 --rtol 1e-3 \
    --metric-atol 0.02
