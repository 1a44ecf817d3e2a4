#!/usr/bin/env bash
# Save or compare this machine's pytest-benchmark baseline (see benchmarks/README.md).
#   benchmarks/baseline.sh save [NAME]   # NAME: a label for the machine (default: its host name)
#   benchmarks/baseline.sh compare       # exit 1 if any mean is >25% slower than the latest save
# Only meaningful on a fixed, idle machine; on shared CI use benchmarks/ratios.py --check.
set -euo pipefail
cd "$(dirname "$0")/.."
storage=benchmarks/baseline
case "${1:-}" in
    save)
        exec .venv/bin/python -m pytest benchmarks --benchmark-storage="$storage" \
            --benchmark-save="${2:-$(hostname)}"
        ;;
    compare)
        exec .venv/bin/python -m pytest benchmarks --benchmark-storage="$storage" \
            --benchmark-compare --benchmark-compare-fail=mean:25%
        ;;
    *)
        echo "usage: $0 save [NAME] | compare" >&2
        exit 2
        ;;
esac
