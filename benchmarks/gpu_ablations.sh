#!/usr/bin/env bash
# All methods' equal-budget ablations in one device call (<= ~9.5 minutes), spread over every GPU of the machine:
#   phase 1  `bash benchmarks/ablation_<method>.sh prepare` for every method, in parallel (datasets, backbones, ...)
#   phase 2  every arm of every method trains as its own background job, round-robin over the GPUs (ABL_PHASE=train)
#   phase 3  every arm is evaluated, again all at once but with no training beside it (ABL_PHASE=eval): in the first
#            run, evaluations started beside other arms' training timed out at 75 s
#   phase 4  each method's `report` (markdown tables) -> $OUT/ablations.md; summaries, logs, small pictures -> tgz
# Equal budget means equal steps within one method (see each script); arms share GPUs, so wall time is not a budget.
# STEPS_<method>=N sets one method's steps (e.g. STEPS_tdgp=200); ARMS_<method>="a b" runs only those arms (e.g.
# leave out the timing arms, tdgp's overhead and progressive's latency, which need a GPU of their own);
# TRAIN_SECONDS/EVAL_SECONDS pass through. REUSE_PREPARED=1 skips a method's prepare where its data is already there
# (a warm machine keeps runs/ between calls).
#   bash benchmarks/gpu_ablations.sh [METHOD ...]         (default: mvtriplane tdgp progressive iggan)
#   SMOKE=1 bash benchmarks/gpu_ablations.sh ...          (CPU, tiny: checks the plumbing end to end)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LOGS=runs/abl/logs; mkdir -p "$LOGS"
PREPARE_S=${PREPARE_S:-140}
ARM_S=${ARM_S:-215}     # per arm, training phase; the scripts stop training cleanly at TRAIN_SECONDS (ARM_S - 15)
EVAL_S=${EVAL_S:-165}   # per arm, evaluation phase; the scripts stop an evaluation at EVAL_SECONDS (EVAL_S - 15)
# Evaluations at once (0 = all). With 13 arms on 2 H100s, 13 concurrent evaluations all hit their 150 s limit (2nd
# run), while 13 concurrent trainings reached their steps in ~100-125 s; 4 at a time costs ceil(arms/4) x EVAL_S.
EVAL_JOBS=${EVAL_JOBS:-4}
export TRAIN_SECONDS=${TRAIN_SECONDS:-$((ARM_S - 15))} EVAL_SECONDS=${EVAL_SECONDS:-$((EVAL_S - 15))}
if [ "${SMOKE:-0}" = 1 ]; then NGPU=1; export CUDA_VISIBLE_DEVICES=""; PREPARE_S=${PREPARE_S_SMOKE:-600}; ARM_S=${ARM_S_SMOKE:-900}; EVAL_S=$ARM_S
else source benchmarks/gpu_env.sh; NGPU=$(nvidia-smi -L | wc -l); nvidia-smi -L | tee "$OUT/gpu.txt"; fi
METHODS=${*:-mvtriplane tdgp progressive iggan}
T0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - T0 )) s"; }
gpu_for() { [ "${SMOKE:-0}" = 1 ] && echo "" || echo $(( $1 % NGPU )); }

echo "=== phase 1: prepare ($METHODS) on $NGPU GPU(s), at $(elapsed)"
i=0
for m in $METHODS; do
  # REUSE_PREPARED=1 on a warm machine: keep what an earlier call's prepare left (same data, backbone, proxy), so
  # that arms of both calls compare (only where the method's data directory is there)
  if [ "${REUSE_PREPARED:-0}" = 1 ] && [ -d "${ABL_DIR:-runs/abl/$m}/data" ]; then
    echo "reusing ${ABL_DIR:-runs/abl/$m}" > "$LOGS/$m-prepare.log"; continue
  fi
  CUDA_VISIBLE_DEVICES=$(gpu_for $i) timeout -s INT "$PREPARE_S" bash "benchmarks/ablation_$m.sh" prepare \
    > "$LOGS/$m-prepare.log" 2>&1 &
  i=$((i + 1))
done
wait
for m in $METHODS; do echo "--- $m prepare: $(tail -n 1 "$LOGS/$m-prepare.log")"; done
tar czf "$OUT/prepare_logs.tgz" "$LOGS" 2>/dev/null  # something comes back even if a later phase is cut short

arm_count() { local n=0 m v; for m in $METHODS; do v="ARMS_$m"; n=$((n + $(echo ${!v:-$(bash "benchmarks/ablation_$m.sh" arms)} | wc -w))); done; echo $n; }

arms() {  # arms PHASE LIMIT [MAX_JOBS]: every arm of every method as a background job, round-robin over the GPUs;
  # with MAX_JOBS > 0 at most that many at once (a job starts when one ends; each keeps its own LIMIT)
  local phase=$1 limit=$2 max_jobs=${3:-0} i=0
  # Each PyTorch process would start one CPU thread per core: 13 of them on 32 cores thrash (the CPU parts of
  # evaluation: mesh sampling, Chamfer fallbacks, image decoding). Split the cores between the jobs at once.
  local at_once; at_once=$(arm_count); [ "$max_jobs" -gt 0 ] && [ "$max_jobs" -lt "$at_once" ] && at_once=$max_jobs
  export OMP_NUM_THREADS=$(( $(nproc) / at_once > 0 ? $(nproc) / at_once : 1 ))
  echo "$phase: up to $at_once jobs at once, OMP_NUM_THREADS=$OMP_NUM_THREADS"
  for m in $METHODS; do
    steps_var="STEPS_$m"; steps=${!steps_var:-${STEPS:-}}
    arms_var="ARMS_$m"; arm_list=${!arms_var:-$(bash "benchmarks/ablation_$m.sh" arms)}
    for arm in $arm_list; do
      while [ "$max_jobs" -gt 0 ] && [ "$(jobs -rp | wc -l)" -ge "$max_jobs" ]; do wait -n; done
      ABL_PHASE=$phase STEPS=$steps CUDA_VISIBLE_DEVICES=$(gpu_for $i) timeout -s KILL "$limit" \
        bash "benchmarks/ablation_$m.sh" "$arm" > "$LOGS/$m-$arm-$phase.log" 2>&1 &
      echo "$phase $m/$arm on GPU $(gpu_for $i)"
      i=$((i + 1))
    done
  done
  wait
}
echo "=== phase 2: train every arm, at $(elapsed)"
arms train "$ARM_S"
echo "=== phase 3: evaluate every arm, at $(elapsed)"
arms eval "$EVAL_S" "$EVAL_JOBS"
echo "=== phase 4: reports, at $(elapsed)"
: > "$OUT/ablations.md"
for m in $METHODS; do
  { echo "## $m"; timeout 60 bash "benchmarks/ablation_$m.sh" report 2>&1; echo; } >> "$OUT/ablations.md"
done
cat "$OUT/ablations.md"
# summaries, logs, metrics and small pictures/meshes (no checkpoints, no datasets)
find runs/abl -path '*/data*' -prune -o -type f \( -name 'summary.json' -o -name '*.log' -o -name 'metrics.json' \
  -o -name 'metrics.jsonl' -o -name '*.md' \) -size -2M -print > /tmp/abl_files.txt
find runs/abl -path '*/data*' -prune -o -type f \( -path '*/artifacts/*' -o -path '*/samples/*' \) -size -3M -print \
  | sort | tail -n 80 >> /tmp/abl_files.txt
# the showcase arms' `unflat generate` grids and exported meshes (iggan: the SHOWCASE arms' generated/, meshes/)
find runs/abl -path '*/data*' -prune -o -type f \( -path '*/generated/*.png' -o -path '*/meshes/*.glb' \) -size -3M -print \
  | sort | head -n 40 >> /tmp/abl_files.txt
tar czf "$OUT/ablations.tgz" -T /tmp/abl_files.txt 2>/dev/null
ls -la "$OUT"; echo "done at $(elapsed)"
