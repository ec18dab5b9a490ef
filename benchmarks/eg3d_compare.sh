#!/usr/bin/env bash
# Same-call speed comparison on the GPU machine: the official EG3D (NVlabs/eg3d train.py, --cfg=shapenet, batch 32,
# 64+64 samples per ray, neural rendering 64^2, SR to 128) and unflat's tri-plane GAN at the identical sizes
# (benchmarks/bench_triplane.py --eg3d --samples 64 64), one after the other in one device command.
#   bash benchmarks/eg3d_compare.sh        (device tool; carry .eg3d, .whl and .gl; writes to $OUT)
#   UNFLAT_FLAGS="--fused-sampling" bash benchmarks/eg3d_compare.sh   (extra options for unflat's two runs)
#   SKIP_TICKS=1 TIMED_TICKS=1 EG3D_TF32=0 OURS_EAGER_FLAGS=--grad-checkpoint   (a shorter call: one EG3D tick
#                                                                        skipped, one timed, no TF32 phase; the
#                                                                        eager unflat run with checkpointing)
#   EG3D_COMPARE_NEURAL=128 bash benchmarks/eg3d_compare.sh            (neural rendering 128^2 on both sides; EG3D
#                                                                        runs batch 32 as 2 x 16, --batch-gpu=16, as
#                                                                        in FIELD-NOTES, which fits its memory)
# EG3D's code comes from .eg3d/eg3d (git-ignored, fetched from NVlabs/eg3d) and is patched in a scratch copy by
# benchmarks/eg3d_patch.py. Every phase runs under `timeout`, sized to what is left of EG3D_COMPARE_BUDGET_S
# (default 555 s); a failed phase does not stop the others. Order: setup (EG3D's CUDA ops build in parallel
# with the dataset), EG3D default, unflat eager + fused sampling, unflat compiled + fused sampling, EG3D with TF32
# (when TF32_RESERVE_S is left), summary.
set -uo pipefail
START=$(date +%s)
BUDGET=${EG3D_COMPARE_BUDGET_S:-555}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
WORK=$PWD/runs/eg3d_compare; LOGS=$WORK/logs
EG3D=$WORK/eg3d; DATA=$WORK/chairs128; ZIP=$WORK/chairs128.zip
mkdir -p "$LOGS"; rm -f "$LOGS"/*.json "$LOGS"/*.log "$LOGS"/phases.txt
source benchmarks/gpu_env.sh
# EG3D's custom_ops blanks TORCH_CUDA_ARCH_LIST so PyTorch targets the visible GPU (sm_90 on an H100); the build
# processes and train.py take the same path, so train.py finds the prebuilt ops (ninja has nothing left to do).
export TORCH_EXTENSIONS_DIR=$WORK/torch_extensions MAX_JOBS=${MAX_JOBS:-8} TORCH_CUDA_ARCH_LIST=9.0
find "$TORCH_EXTENSIONS_DIR" -name lock -delete 2>/dev/null  # a build killed in an earlier call leaves its lock
rows_before=$(python3 benchmarks/write_benchmarks_md.py --count 2>/dev/null || echo 0)

NEURAL=${EG3D_COMPARE_NEURAL:-64}
EG3D_EXTRA=(); OURS_EXTRA=()
if [ "$NEURAL" != 64 ]; then
  EG3D_EXTRA=(-- "--neural_rendering_resolution_initial=$NEURAL" --batch-gpu=16); OURS_EXTRA=(--neural-resolution "$NEURAL")
fi
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }
note() { echo "[$(elapsed)s] $*" | tee -a "$LOGS/phases.txt"; }

# phase NAME CAP_S COMMAND...: run under timeout (the smaller of CAP_S and the budget left, less 20 s for the
# summary); log to $LOGS/NAME.log; report rc and seconds. Skipped when under 45 s would be left for it.
phase() {
  local name=$1 cap=$2; shift 2
  local limit=$(( $(left) - 20 )); [ "$limit" -gt "$cap" ] && limit=$cap
  if [ "$limit" -lt 45 ]; then note "SKIP $name: only ${limit}s of the budget left"; return 99; fi
  local t0; t0=$(date +%s)
  note "START $name (limit ${limit}s)"
  timeout -k 15 "$limit" "$@" > "$LOGS/$name.log" 2>&1; local rc=$?
  note "END $name rc=$rc in $(( $(date +%s) - t0 ))s"
  tail -n 4 "$LOGS/$name.log" | cut -c1-400
  return $rc
}

gpu_check() {  # nothing of an earlier phase may still hold the GPU when a timed phase starts
  local apps; apps=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null)
  [ -n "$apps" ] && note "WARNING GPU still in use before $1: $apps" && sleep 5
  return 0
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, numpy, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__)"
  nvcc --version | tail -n 2; echo "EG3D commit $(cat .eg3d/COMMIT 2>/dev/null || echo unknown)"; nproc; } 2>&1 | tee "$LOGS/machine.txt"

# ---- setup: patch EG3D; build its two CUDA ops and make the dataset, all at once --------------------------
EG3D_OK=1
phase patch 60 python3 benchmarks/eg3d_patch.py --src .eg3d/eg3d --dst "$EG3D" || EG3D_OK=0
if [ $EG3D_OK = 1 ]; then
  phase build_bias_act 300 python3 benchmarks/eg3d_run.py build --eg3d "$EG3D" --op bias_act & PID_B=$!
  phase build_upfirdn2d 300 python3 benchmarks/eg3d_run.py build --eg3d "$EG3D" --op upfirdn2d & PID_U=$!
fi
make_data() {
  if [ ! -f "$DATA/manifest.json" ]; then
    phase synth 90 python3 -m unflat dataset synth --category chair --num-shapes "${EG3D_COMPARE_SHAPES:-1000}" \
      --resolution 128 --workers 12 --no-with-depth --out "$DATA" --overwrite || return 1
  fi
  phase convert 90 python3 benchmarks/eg3d_dataset.py --src "$DATA" --out "$ZIP"
}
if [ $EG3D_OK = 1 ]; then
  if ! make_data; then  # speed does not depend on image content: keep the comparison alive
    note "synth/convert failed: falling back to orbit-noise images (see synth.log / convert.log)"
    phase convert_fallback 60 python3 benchmarks/eg3d_dataset.py --orbit-noise 1000 --out "$ZIP" || EG3D_OK=0
  fi
  wait $PID_B || EG3D_OK=0
  wait $PID_U || EG3D_OK=0
fi
if [ $EG3D_OK != 1 ]; then
  note "EG3D setup failed (see patch/build/synth/convert logs); unflat's side still runs"
  for name in default tf32; do
    echo '{"side": "eg3d", "ok": false, "error": "EG3D setup failed (patch, CUDA-op build or dataset): see the logs"}' \
      > "$LOGS/eg3d_$name.json"
  done
fi

eg3d_train() {  # eg3d_train NAME CAP [--tf32]
  local name=$1 cap=$2; shift 2
  gpu_check "eg3d_$name"
  phase "eg3d_$name" "$cap" python3 benchmarks/eg3d_run.py train --eg3d "$EG3D" --data "$ZIP" \
    --outdir "$WORK/eg3d_runs" --log "$LOGS/eg3d_${name}_train.log" --json "$LOGS/eg3d_$name.json" \
    --skip-ticks "${SKIP_TICKS:-2}" --timed-ticks "${TIMED_TICKS:-2}" "$@" "${EG3D_EXTRA[@]}"
  local rc=$? pgid; pgid=$(cat "$LOGS/eg3d_$name.pgid" 2>/dev/null)
  # the driver stops train.py's process group itself; if it was killed first, end that group here
  if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then
    note "ending EG3D process group $pgid left by eg3d_$name"; kill -9 -- "-$pgid" 2>/dev/null; sleep 3
  fi
  return $rc
}
ours() {  # ours NAME CAP FLAGS...
  local name=$1 cap=$2; shift 2
  gpu_check "ours_$name"
  # shellcheck disable=SC2086  # UNFLAT_FLAGS: extra bench_triplane.py options for both runs, e.g. "--fused-sampling"
  phase "ours_$name" "$cap" python3 benchmarks/bench_triplane.py --eg3d --samples 64 64 --batch 32 --no-write \
    ${UNFLAT_FLAGS:-} "${OURS_EXTRA[@]}" "$@"
}

# ---- the fused Triton sampling kernel must agree with grid_sample on this GPU before unflat's runs use it --------
FUSED=--fused-sampling
gpu_check fused_check
phase fused_check 60 python3 benchmarks/bench_triplane_sampling.py --batch 4 --points 20000 --repeats 2 --no-write \
  --check || { FUSED=""; note "fused sampling check failed: unflat's runs use grid_sample"; }

# ---- timed runs: most important first ----------------------------------------------------------------------
# unflat eager comes before compiled: it is quick and always gives a figure, while the first torch.compile at
# these sizes has taken more than 240 s (run 1); the compiled run then gets everything up to EG3D's TF32 phase.
[ $EG3D_OK = 1 ] && eg3d_train default 220
# OURS_EAGER_FLAGS: options of the eager run alone (at neural 128^2 with 64+64 samples, batch 32 does not fit in
# 80 GB eagerly: --grad-checkpoint, as EG3D itself runs that size as 2 x 16 with --batch-gpu=16)
# shellcheck disable=SC2086
ours eager 120 --steps 16 --warmup 4 $FUSED ${OURS_EAGER_FLAGS:-}
[ "${EG3D_TF32:-1}" = 1 ] || TF32_RESERVE_S=0
ours fused $(( $(left) - 20 - ${TF32_RESERVE_S:-115} )) --steps 16 --warmup 6 --compile $FUSED
[ $EG3D_OK = 1 ] && [ "${EG3D_TF32:-1}" = 1 ] && TIMED_TICKS=1 eg3d_train tf32 170 --tf32

# ---- summary -------------------------------------------------------------------------------------------------
note "summary"
timeout 60 python3 benchmarks/eg3d_run.py summary --dir "$LOGS" --neural "$NEURAL" | tail -n 1 | tee "$OUT/eg3d_compare.json"
python3 benchmarks/write_benchmarks_md.py --since "$rows_before" > "$OUT/new_rows.jsonl" 2>/dev/null
runs=(); [ -d "$WORK/eg3d_runs" ] && runs=(eg3d_runs)  # EG3D's run dirs: log.txt, options, stats.jsonl
tar czf "$OUT/eg3d_compare_logs.tar.gz" --exclude='*.png' --exclude='*.pkl' -C "$WORK" logs "${runs[@]}"
note "done in $(elapsed)s (budget ${BUDGET}s)"
