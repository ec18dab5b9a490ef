# Sourced by every benchmarks/ablation_<method>.sh: the environment and the helpers they share.
#   SMOKE=1           CPU machine, tiny sizes: no carried GPU-machine libraries, headless GL through OSMesa
#   ABL_PHASE=...     train|eval|both (default both): benchmarks/gpu_ablations.sh trains every arm first, then
#                     evaluates them all, so evaluations do not compete with training for the GPU
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYOPENGL_PLATFORM=osmesa PYTHONUNBUFFERED=1
else
  source benchmarks/gpu_env.sh
fi
PHASE=${ABL_PHASE:-both}
PY=python3

log() { echo "[$(date +%H:%M:%S)] $*"; }
run() {  # run CMD... : echo it, append it to $CMDS, keep going on failure (each part is independent)
  log "+ $*"; printf '%s\n' "$*" >> "$CMDS"; "$@"; local rc=$?; [ $rc -eq 0 ] || log "exit $rc: $1 ... $2 $3"; return $rc
}
