#!/usr/bin/env bash
# Fresh machine -> the whole test suite on CPU, inside the virtual environment that setup.sh makes
# (.venv, or UNFLAT_VENV=DIR). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "${UNFLAT_VENV:-.venv}/bin/python" -m pytest -q --durations=15 "$@"
