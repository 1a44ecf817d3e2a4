#!/usr/bin/env bash
# Build .venv-xla: torch + torch_xla (PJRT CPU backend) + this project, apart from the main venv.
#
# Why a second venv: pyproject.toml pins torch==2.14.1, while torch_xla 2.9
# is built against torch 2.9.x. So torch comes from PyPI here and the project is installed with
# --no-deps, its other dependencies listed explicitly below (keep them in step with pyproject.toml).
#
# PyPI has no CPU-only torch for Linux x86_64: torch==2.9.1 from PyPI is the CUDA 12.8 build and
# pulls the nvidia-*-cu12 wheels (~3 GB). They are needed: `import torch` loads them even on CPU.
#
# Idempotent: a stamp file in the venv records what was installed; a rerun with the same
# versions only checks that torch_xla still imports. Environment knobs:
#   XLA_VENV          venv path (default: <repo>/.venv-xla)
#   XLA_PYTHON        interpreter to build it from (default: python3)
#   XLA_TORCH         torch requirement (default: torch==2.9.1)
#   XLA_TORCH_XLA     torch_xla requirement (default: torch_xla==2.9.*)
#   XLA_TORCHVISION   torchvision requirement, the release built for that torch (default:
#                     torchvision==0.24.1; imagenet_resnet50 needs it)
#   XLA_FORCE=1       rebuild even if the stamp matches
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XLA_VENV:-$ROOT/.venv-xla}"
PYTHON="${XLA_PYTHON:-python3}"
TORCH_REQ="${XLA_TORCH:-torch==2.9.1}"
TORCH_XLA_REQ="${XLA_TORCH_XLA:-torch_xla==2.9.*}"
TORCHVISION_REQ="${XLA_TORCHVISION:-torchvision==0.24.1}"
# The project's runtime dependencies other than torch (pyproject.toml [project].dependencies).
PROJECT_DEPS=("numpy>=1.26" "pytorch-optimizer>=3.5,<5" "tabulate>=0.9" "tqdm>=4.66" "matplotlib>=3.8")

STAMP="$VENV/.xla-setup-stamp"
STAMP_TEXT="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') $TORCH_REQ $TORCH_XLA_REQ $TORCHVISION_REQ ${PROJECT_DEPS[*]}"

log() { printf '[setup_env] %s\n' "$*"; }

import_check() {
    # PJRT_DEVICE=CPU: the XLA CPU client ships inside torch_xla, no TPU or libtpu needed.
    PJRT_DEVICE=CPU OMP_NUM_THREADS=1 "$VENV/bin/python" - <<'PY'
import torch
import torch_xla
import torchvision

device = torch_xla.device()
value = (torch.ones(3, device=device) * 2).sum()
torch_xla.sync()
assert float(value) == 6.0, value
print(f"torch {torch.__version__} (cuda build: {torch.version.cuda}), "
      f"torch_xla {torch_xla.__version__}, torchvision {torchvision.__version__}, "
      f"device {device}: import check ok")
PY
}

report_sizes() {
    local site
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    log "installed sizes:"
    du -sh "$VENV" | sed 's/^/    /'
    # torch_xla's compiled part (_XLAC) sits beside its package, at the top of site-packages.
    for name in torch torch_xla _XLAC.*.so nvidia triton; do
        [ -e "$site"/$name ] && du -sh "$site"/$name | sed 's/^/    /'
    done
    return 0
}

if [ -z "${XLA_FORCE:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_TEXT" ]; then
    log "already set up ($STAMP matches): $STAMP_TEXT"
    import_check
    exit 0
fi

started=$(date +%s)
log "interpreter: $("$PYTHON" -c 'import sys, platform; print(sys.executable, platform.python_version(), platform.machine())')"
rm -f "$STAMP"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)

# Download first, then install offline from the wheelhouse: this separates the network time
# from the install time and gives the exact download size.
WHEELHOUSE="$(mktemp -d "${TMPDIR:-/tmp}/xla-wheels.XXXXXX")"
trap 'rm -rf "$WHEELHOUSE"' EXIT
log "downloading $TORCH_REQ $TORCH_XLA_REQ $TORCHVISION_REQ ${PROJECT_DEPS[*]}"
# One resolution for everything, so nothing can pull in another torch.
"${PIP[@]}" download --quiet --dest "$WHEELHOUSE" "$TORCH_REQ" "$TORCH_XLA_REQ" "$TORCHVISION_REQ" \
    "${PROJECT_DEPS[@]}"
downloaded=$(date +%s)
log "downloaded $(du -sh "$WHEELHOUSE" | cut -f1) in $((downloaded - started)) s; largest wheels:"
ls -S -s -h "$WHEELHOUSE" | sed -n '2,6p' | sed 's/^/    /'

"${PIP[@]}" install --quiet --no-index --find-links "$WHEELHOUSE" \
    "$TORCH_REQ" "$TORCH_XLA_REQ" "$TORCHVISION_REQ" "${PROJECT_DEPS[@]}"
# The library and the project, without their torch requirements (torch>=2.13, torch==2.14.1).
"${PIP[@]}" install --quiet --no-deps -e "$ROOT/library" -e "$ROOT"
installed=$(date +%s)
log "installed in $((installed - downloaded)) s (total $((installed - started)) s)"

log "resolved versions:"
"${PIP[@]}" list 2>/dev/null \
    | grep -i -E '^(torch|torch.xla|torchvision|numpy|pytorch.optimizer|date-repro|date-legw) ' \
    | sed 's/^/    /'
report_sizes
import_check
echo "$STAMP_TEXT" >"$STAMP"
log "done: $VENV"
