#!/usr/bin/env bash
# Wild vs clean data at equal budget (issue #23): mvtriplane and 3dgp trained on the same shapes rendered on white
# (`dataset synth`) and composited in the wild (`dataset synth --wild`: photos/textures behind, random zoom and
# offset, varied light, shadows), scored by the foreground-mesh COV/MMD against the same ground-truth meshes.
#
#   bash benchmarks/ablation_wild.sh arms       # the arms, one line
#   bash benchmarks/ablation_wild.sh prepare    # both datasets (same shapes and cameras: seed 0)
#   bash benchmarks/ablation_wild.sh mv-clean|mv-wild|tdgp-clean|tdgp-wild   # each: train + evaluate
#   bash benchmarks/ablation_wild.sh report     # markdown table + the wild/clean MMD ratio per method
#   bash benchmarks/ablation_wild.sh mv-wild-noblob|tdgp-wild-noblob   # the wild arms without the density blob
#                                               # (--generator.density-blob 0; before session 11 every run had none)
#   bash benchmarks/ablation_wild.sh mv-wild-bg8  # a far background with 8 octaves of direction features (4 default)
#   bash benchmarks/ablation_wild.sh tdgp-wild-VARIANT-sSEED   # 3dgp's ablation on the wild data: VARIANT full,
#                                               # noadaptor, nodistill or fixedcam; SEED the training seed
#   bash benchmarks/ablation_wild.sh device     # GPU machine, one command: prepare, every arm of $DEVICE_ARMS
#                                               # training at once, evaluations EVAL_JOBS at a time, report,
#                                               # sheet; results in $OUT (wild.json, wild.md, wild_sheet.png, logs)
#   RESUME=1 bash benchmarks/ablation_wild.sh device   # a later call on the same warm machine: every arm continues
#                                               # for TRAIN_SECONDS more (train_seconds adds up), then re-evaluated
#   SMOKE=1 bash benchmarks/ablation_wild.sh all   # the whole thing at tiny sizes on CPU (numbers mean nothing)
#
# The runs pick their background from the data (--generator.background auto: white on the clean data, a learned far
# background on the wild data); every arm exports the object only (--export.mesh-object-only on), so COV/MMD are of
# foreground meshes on both sides. Target (issue #23): wild MMD within 1.3x of clean, per method.
# Each arm: runs/abl/wild/<arm>/summary.json; the exact commands in <arm>/commands.
set -uo pipefail
source benchmarks/ablation_lib.sh  # SMOKE, ABL_PHASE, PY, log, run, arm_dir, trained_seconds
D=${ABL_DIR:-runs/abl/wild}
mkdir -p "$D"
ARMS="mv-clean mv-wild tdgp-clean tdgp-wild"
UNFLAT_CACHE_DIR=$(cd "$D" && pwd)/cache; export UNFLAT_CACHE_DIR   # 3dgp's teacher and depth caches, per dataset

if [ "$SMOKE" = 1 ]; then
  DEV=cpu; RES=16; SHAPES=8; WORKERS=2
  MV_ARCH=(--preset tiny --batch-size 4); TDGP_ARCH=(--preset tiny --batch-size 4)
  STEPS=${STEPS:-3}; TRAIN_SECONDS=240; EVAL_SECONDS=120
  EVAL_ARGS=(--num-samples 8 --num-shapes 4 --num-points 256 --metrics fid chamfer --backbone efficientnet)
else
  DEV=cuda; RES=64; SHAPES=${SHAPES:-300}; WORKERS=${WORKERS:-$(( $(nproc) > 4 ? $(nproc) - 2 : 1 ))}
  # the sizes of ablation_mvtriplane.sh / ablation_tdgp.sh, so the clean arms compare with those tables
  MV_ARCH=(--preset small --rendering.output-resolution 64 --rendering.neural-resolution 32 --generator.plane-resolution 64 --generator.plane-channels 32
           --generator.channel-max 256 --discriminator.channel-max 256 --batch-size 32 --rendering.num-coarse 32 --rendering.num-fine 32)
  TDGP_ARCH=(--preset small --rendering.neural-resolution 32 --generator.plane-resolution 64 --generator.plane-channels 32 --generator.channel-max 256
             --discriminator.channel-max 256 --batch-size 32 --rendering.num-coarse 32 --rendering.num-fine 32 --depth.adaptor-hidden 64)
  # each arm (train + evaluate) fits one 10-minute device command; the four arms can run side by side on one GPU
  STEPS=${STEPS:-600}; TRAIN_SECONDS=${TRAIN_SECONDS:-420}; EVAL_SECONDS=${EVAL_SECONDS:-150}
  EVAL_ARGS=(--num-samples 256 --num-shapes 64 --metrics fid chamfer --backbone efficientnet)
fi
# --export.mesh-object-only on in every arm: the same foreground extraction for clean and wild meshes (auto would use it
# for the wild arms only, and on an early box-filling field it alone changes MMD several-fold)
COMMON=(--max-steps "$STEPS" --device "$DEV" --log-every 25 --sample-every "$STEPS" --checkpoint-every 250
        --keep-checkpoints 1 --no-tensorboard --export.mesh-object-only on)

prepare() {
  CMDS=$D/prepare.commands; : > "$CMDS"; local t0=$SECONDS
  local synth=(--category chair car mug --num-shapes $SHAPES --resolution $RES --seed 0 --workers $WORKERS --overwrite)
  run $PY -m unflat dataset synth "${synth[@]}" --out "$D/clean"
  run $PY -m unflat dataset synth "${synth[@]}" --wild --out "$D/wild"
  log "prepare took $((SECONDS - t0)) s"
}

train_arm() {  # train_arm ARM METHOD DATA SEED ARCH...
  local arm=$1 method=$2 data=$3 seed=$4; shift 4
  local A=$D/$arm before=0
  local t0=$SECONDS
  if [ "${RESUME:-0}" = 1 ] && [ "$PHASE" != eval ] && [ -e "$A/run/checkpoints/latest.pt" ]; then
    # a continuation (a later call on the same warm machine): TRAIN_SECONDS more, added to the earlier training time
    CMDS=$A/commands; before=$(cat "$A/train_seconds" 2>/dev/null || echo 0)
    run timeout -s INT $TRAIN_SECONDS $PY -m unflat train --resume "$A/run" --max-steps "$STEPS" >> "$A/train.log" 2>&1
  else
    arm_dir "$A"
    [ "$PHASE" = eval ] || run timeout -s INT $TRAIN_SECONDS $PY -m unflat train $method "$@" "${COMMON[@]}" --seed "$seed" \
        --data "$D/$data" --out "$A/run" > "$A/train.log" 2>&1
  fi
  local train_s; train_s=$(trained_seconds "$A" $((SECONDS - t0 + before))); t0=$SECONDS
  [ "$PHASE" = train ] && return 0
  # the ground-truth meshes are the same shapes in both datasets: COV/MMD compare across arms
  run timeout -s INT $EVAL_SECONDS $PY -m unflat evaluate "$A/run" --data "$D/$data" \
      "${EVAL_ARGS[@]}" --device $DEV --out "$A/metrics.json" > "$A/eval.log" 2>&1
  tail -n 3 "$A/eval.log"
  $PY benchmarks/ablation_summary.py summary "$A" --method $method --arm "$arm" --steps-target "$STEPS" \
      --train-s "$train_s" --eval-s $((SECONDS - t0))
}

report() {
  $PY benchmarks/ablation_summary.py report "$D" --method "mvtriplane/3dgp" --arms $ARMS \
      --title "wild vs clean data at equal budget (chair/car/mug, ${RES}px, COV/MMD of foreground meshes)" \
      --labels "mv-clean=mvtriplane, clean" "mv-wild=mvtriplane, wild" "tdgp-clean=3dgp, clean" "tdgp-wild=3dgp, wild"
  $PY - "$D" <<'EOF'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
def mmd(arm):
    try:
        return json.loads((root / arm / "metrics.json").read_text())["shapes"]["mmd"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
print("\n| method | MMD clean | MMD wild | wild / clean | within 1.3x |\n|---|---|---|---|---|")
for name, prefix in (("mvtriplane", "mv"), ("3dgp", "tdgp")):
    clean, wild = mmd(f"{prefix}-clean"), mmd(f"{prefix}-wild")
    if clean is None or wild is None or clean <= 0:
        print(f"| {name} | {clean} | {wild} | missing | missing |")
        continue
    ratio = wild / clean
    print(f"| {name} | {clean:.5f} | {wild:.5f} | {ratio:.2f} | {'yes' if ratio <= 1.3 else 'no'} |")
EOF
}

device() {  # every arm trains at once on the one GPU (equal wall clock), then EVAL_JOBS evaluations at a time
  local out=${OUT:-$D/out}; mkdir -p "$out"; local t0=$SECONDS
  if [ "${RESUME:-0}" = 1 ] && [ -e "$D/clean/manifest.json" ] && [ -e "$D/wild/manifest.json" ]; then
    log "device: RESUME=1, continuing the arms on the data already made"
  else
    prepare > "$D/prepare.log" 2>&1; tail -n 2 "$D/prepare.log"
  fi
  local arms=(${DEVICE_ARMS:-$ARMS}) cpus; cpus=$(nproc)
  local threads=$(( cpus / ${#arms[@]} )); [ $threads -ge 1 ] || threads=1
  log "device: ${#arms[@]} arms at once (${threads} threads each): ${arms[*]}"
  for a in "${arms[@]}"; do OMP_NUM_THREADS=$threads ABL_PHASE=train bash "$0" "$a" > "$D/$a.train.log" 2>&1 & done
  wait; log "training done at $((SECONDS - t0)) s"
  local jobs=${EVAL_JOBS:-4} running=0
  for a in "${arms[@]}"; do
    OMP_NUM_THREADS=$(( cpus / jobs > 0 ? cpus / jobs : 1 )) ABL_PHASE=eval bash "$0" "$a" > "$D/$a.eval.log" 2>&1 &
    running=$((running + 1)); if [ $running -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
  done
  wait; log "evaluations done at $((SECONDS - t0)) s"
  ARMS="${arms[*]}" report | tee "$out/wild.md"
  $PY benchmarks/wild_sheet.py "$D" --arms "${arms[@]}" --out "$out/wild_sheet.png" --device $DEV
  $PY benchmarks/wild_report.py "$D" --arms "${arms[@]}" --out "$out/wild.json" --smoke "$SMOKE"
  tar -czf "$out/wild_logs.tar.gz" -C "$D" --ignore-failed-read $(cd "$D" && ls -d *.log */commands */summary.json */metrics.json */train.log */eval.log clean/preview.png wild/preview.png 2>/dev/null)
  log "device: done in $((SECONDS - t0)) s"; ls -la "$out"
}

case "${1:-}" in
  arms) echo "$ARMS" ;;
  prepare) prepare ;;
  mv-clean) train_arm mv-clean mvtriplane clean 0 "${MV_ARCH[@]}" ;;
  mv-wild) train_arm mv-wild mvtriplane wild 0 "${MV_ARCH[@]}" ;;
  mv-wild-noblob) train_arm mv-wild-noblob mvtriplane wild 0 "${MV_ARCH[@]}" --generator.density-blob 0 ;;
  mv-wild-bg8) train_arm mv-wild-bg8 mvtriplane wild 0 "${MV_ARCH[@]}" --generator.background-frequencies 8 ;;
  tdgp-clean) train_arm tdgp-clean 3dgp clean 0 "${TDGP_ARCH[@]}" ;;
  tdgp-wild) train_arm tdgp-wild 3dgp wild 0 "${TDGP_ARCH[@]}" ;;
  tdgp-wild-noblob) train_arm tdgp-wild-noblob 3dgp wild 0 "${TDGP_ARCH[@]}" --generator.density-blob 0 ;;
  tdgp-wild-*-s*)  # 3dgp's ablation on the wild data (tdgp-wild is the full model at seed 0)
    variant=${1#tdgp-wild-}; seed=${variant##*-s}; variant=${variant%-s*}
    case $variant in
      full) extra=() ;;
      noadaptor) extra=(--depth.no-adaptor) ;;
      nodistill) extra=(--distillation.no-enabled) ;;
      fixedcam) extra=(--camera-generator.no-enabled) ;;
      *) echo "unknown 3dgp variant '$variant' (full, noadaptor, nodistill, fixedcam)" >&2; exit 2 ;;
    esac
    train_arm "$1" 3dgp wild "$seed" "${TDGP_ARCH[@]}" "${extra[@]}" ;;
  report) report ;;
  device) device ;;
  all) prepare; for a in $ARMS; do bash "$0" "$a"; done; report ;;
  *) echo "usage: $0 arms|prepare|${ARMS// /|}|report|all" >&2; exit 2 ;;
esac
