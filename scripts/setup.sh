#!/usr/bin/env bash
# Installs what unflat needs on a fresh Debian/Ubuntu machine with Python >= 3.10, then unflat itself
# (editable). Safe to re-run: each step is skipped when already satisfied.
#   bash scripts/setup.sh          # runtime: OpenGL (OSMesa) libraries, PyTorch, unflat
#   bash scripts/setup.sh test     # plus test tools and headless Chromium (viewer tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# libegl-mesa0 + libgl1-mesa-dri: Mesa's EGL and llvmpipe, so moderngl renders headless on a CPU machine.
apt_packages=(libosmesa6 libgl1 libglu1-mesa libegl1 libegl-mesa0 libgl1-mesa-dri)
[ "${1:-}" = "test" ] && apt_packages+=(chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "[setup] installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_install() { "$PYTHON" -m pip install -q --disable-pip-version-check "$@"; }
# The CPU build of PyTorch when none is installed (a GPU machine keeps its own CUDA build).
"$PYTHON" -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
mode=${1:-}
need_deps=0
"$PYTHON" -c "import tyro, trimesh, pyrender, moderngl, rich, skimage, safetensors, imageio, yaml" 2>/dev/null || need_deps=1
if [ "$mode" = "test" ]; then
  "$PYTHON" -c "import pytest, hypothesis, torchmetrics" 2>/dev/null || need_deps=1
fi
extras=""; [ "$mode" = "test" ] && extras="[test]"
if [ "$need_deps" = 1 ]; then
  echo "[setup] installing unflat's Python dependencies"
  pip_install -e ".$extras"
else
  pip_install --no-deps -e .   # point the installed `unflat` at this checkout
fi
# pyrender pins PyOpenGL 3.1.0, which lacks OSMesaCreateContextAttribs: install the newer one after it.
"$PYTHON" -c "import OpenGL, sys; sys.exit(0 if tuple(map(int, OpenGL.__version__.split('.')[:3])) >= (3, 1, 7) else 1)" \
  || pip_install "PyOpenGL>=3.1.7" --no-deps
