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

# An arm's two phases share its directory: training starts it afresh, evaluation keeps what training left.
arm_dir() {  # arm_dir DIR : (re)create the arm's directory when training; CMDS = its command log
  CMDS=$1/commands
  if [ "$PHASE" != eval ]; then rm -rf "$1"; mkdir -p "$1"; : > "$CMDS"; fi
}
trained_seconds() {  # trained_seconds DIR SECONDS : training wall time, measured now or recorded by the train phase
  if [ "$PHASE" = eval ]; then cat "$1/train_seconds" 2>/dev/null || echo 0; else echo "$2" | tee "$1/train_seconds"; fi
}
arm_config() {  # arm_config ARM : the arm's config file benchmarks/arms/$M/ARM.yaml (a seed suffix -sN dropped)
  local f=benchmarks/arms/$M/${1%-s[0-9]*}.yaml
  [ -f "$f" ] || { log "no arm file $f" >&2; return 1; }
  echo "$f"
}
