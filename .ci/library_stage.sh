#!/usr/bin/env bash
# The library's own stage (after bin/test, which set up .venv): build date-legw's wheel and sdist
# from library/ (python -m build; twine check), then, for each torch release below, a fresh venv
# with that torch and pytest gets the wheel alone, installed by pip as a user would, and runs the
# library's tests (tests/test_date_*.py, copied outside the repository so that `import date` is
# the installed wheel). tests/test_date_install.py checks that the install added the library and
# changed nothing else there, torch included. Then the venv of the oldest torch (the floor of the
# library's torch>=2.13) gets the extras and runs the tests that need them, where a skip fails.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSIONS=(2.13.0 2.14.1)
EXTRAS="lars,lightning,transformers,jax"
EXTRA_TESTS=(test_date_optim.py test_date_lightning.py test_date_transformers.py test_date_optax.py)
PYTHON="${PYTHON:-python3}"  # makes the fresh venvs
BUILD_PYTHON="${BUILD_PYTHON:-.venv/bin/python}"  # has build and twine (the suite's test extra)

work="$(mktemp -d "${TMPDIR:-/tmp}/date-library.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log() { printf '[library] %s\n' "$*"; }
since() { echo $(($(date +%s) - $1)); }

started=$(date +%s)
if ! "$BUILD_PYTHON" -m build --outdir "$work/dist" library >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    exit 1
fi
"$BUILD_PYTHON" -m twine check --strict "$work"/dist/*
wheel=$(echo "$work"/dist/*.whl)
log "built $(cd "$work/dist" && echo *) in $(since "$started") s"

mkdir "$work/tests"
cp tests/conftest.py tests/test_date_*.py "$work/tests/"

run_tests() {  # venv, then pytest arguments; from the copy, so the repository is not on sys.path
    local venv=$1
    shift
    (cd "$work/tests" && OMP_NUM_THREADS=1 "$venv/bin/python" -m pytest -p no:cacheprovider -q "$@")
}

for version in "${TORCH_VERSIONS[@]}"; do
    venv="$work/venv-torch-$version"
    step=$(date +%s)
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "torch==$version" pytest
    "$venv/bin/python" -m pip list --format=json >"$venv/before.json"
    log "torch $version: venv with torch and pytest in $(since "$step") s"
    step=$(date +%s)
    "$venv/bin/python" -m pip install --quiet "$wheel"
    log "torch $version: the wheel installed in $(since "$step") s; the library's tests alone:"
    DATE_LIBRARY_WHEEL="$wheel" DATE_PIP_LIST_BEFORE="$venv/before.json" run_tests "$venv"
done

floor="$work/venv-torch-${TORCH_VERSIONS[0]}"
step=$(date +%s)
"$floor/bin/python" -m pip install --quiet "$wheel[$EXTRAS]"
installed_torch=$("$floor/bin/python" -c 'import torch; print(torch.__version__)')
if [ "${installed_torch%%+*}" != "${TORCH_VERSIONS[0]}" ]; then
    log "the extras changed torch ${TORCH_VERSIONS[0]} to $installed_torch"
    exit 1
fi
log "torch ${TORCH_VERSIONS[0]}: extras [$EXTRAS] in $(since "$step") s; their tests, no skip allowed:"
run_tests "$floor" -rs --junitxml="$work/extras.xml" "${EXTRA_TESTS[@]}"
"$floor/bin/python" - "$work/extras.xml" <<'PY'
import sys
import xml.etree.ElementTree as ElementTree

root = ElementTree.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
skipped = sum(int(suite.get("skipped", 0)) for suite in suites)
if skipped:
    sys.exit(f"[library] {skipped} test(s) skipped with every extra installed")
PY
log "done in $(since "$started") s"
