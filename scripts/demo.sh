#!/usr/bin/env bash
# Fresh machine -> unflat demo end to end on embedded data (CPU, minutes). Outputs in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m unflat demo "$@"
