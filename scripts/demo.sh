#!/usr/bin/env bash
# Fresh machine -> `unflat demo` end to end on embedded data (CPU, minutes), inside the virtual
# environment that setup.sh makes (.venv, or UNFLAT_VENV=DIR). Outputs in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${UNFLAT_VENV:-.venv}/bin/python" -m unflat demo "$@"
