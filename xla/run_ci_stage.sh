#!/usr/bin/env bash
# Opt-in CI stage for the Cloud TPU path, run on CPU through PJRT's CPU client. Not part of the
# default CI: the first run downloads ~4 GB (torch 2.9.1 from PyPI is the CUDA build) into a
# ~7.2 GB .venv-xla. Two checks:
#   1. xla/smoke.py: the trainer on 1 XLA device matches plain CPU step by step (and resumes);
#   2. xla/multi_device_check.py: 2 XLA devices (xla/launch.py) match 1 at the same global batch.
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
