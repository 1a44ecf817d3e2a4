#!/usr/bin/env bash
# Opt-in CI stage for the Cloud TPU path, run on CPU through PJRT's CPU client. Not part of the
# default CI: the first run downloads ~3 GB (torch 2.9.1 from PyPI is the CUDA build).
#   bash xla/run_ci_stage.sh [smoke.py arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XLA_VENV:-$ROOT/.venv-xla}"

bash "$ROOT/xla/setup_env.sh"
# One thread for eager CPU ops: the comparison is tiny, and CI machines have 2 cores.
cd "$ROOT"
PJRT_DEVICE=CPU OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" "$VENV/bin/python" xla/smoke.py "$@"
