#!/usr/bin/env bash
# progressive's encoder at equal budget (issue #21), one device command: the zoo-sized network with unflat's conv
# encoder (trained from scratch) against the fine-tuned ImageNet EfficientNet-Lite0 encoder
# (--encoder.backbone efficientnet), trained at the same time on the one GPU for TRAIN_S seconds on the same data,
# then each measured by benchmarks/progressive_quality.sh (held-back IoU/PSNR/Chamfer/F, specificity, sheet).
#
#   bash benchmarks/gpu_encoder_ab.sh                 # GPU machine; carry .whl (with the EfficientNet wheels) and .gl
#   SMOKE=1 bash benchmarks/gpu_encoder_ab.sh         # the same steps on CPU at tiny sizes (numbers mean nothing)
#
# Knobs: ARMS ("conv effnet"), FLAGS_<arm> (added to the shared flags; effnet: --encoder.backbone efficientnet),
# TRAIN_S (280), BATCH (64), HELD_CROP (none), PACK=<arm> (also pack that arm's run as a zoo model into $OUT/zoo).
# $OUT/<arm>/: progressive_quality.json, progressive_quality_sheet.png, logs.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=${SMOKE:-0}
W=${WORK:-runs/encoder_ab}
OUT=${OUT:-$W/out}
rm -rf "$W"; mkdir -p "$W" "$OUT"
[ "$SMOKE" = 1 ] || source benchmarks/gpu_env.sh
PY=${PY:-python3}
ARMS=${ARMS:-conv effnet}
FLAGS_effnet=${FLAGS_effnet:---encoder.backbone efficientnet}
TRAIN_S=${TRAIN_S:-280}
if [ "$SMOKE" = 1 ]; then
  SHARED_FLAGS="--losses.perceptual-features pyramid"; BATCH=${BATCH:-4}; TRAIN_S=${TRAIN_S_SMOKE:-25}
else  # the shipped reconstructor's recipe (benchmarks/gpu_zoo.sh) at batch 64
  BATCH=${BATCH:-64}
  SHARED_FLAGS="--encoder.max-channels 256 --decoder.max-channels 256 --encoder.feature-dim 256 --losses.perceptual-features pyramid --lr 2e-4 --discriminator.lr 2e-4 --schedule.stage2-start 1000000 --schedule.stage3-start 1000000"
fi
log() { echo "[$(date +%H:%M:%S)] $*"; }
T0=$SECONDS
export SMOKE BATCH TRAIN_S HELD_CROP=${HELD_CROP:-none}
log "encoder A/B: arms '$ARMS', $TRAIN_S s each at once, batch $BATCH"
# one dataset for every arm (and nvdiffrast built while it renders)
PQ_DIR=$W/shared OUT=$W/shared/out PHASE=data NVDIFFRAST=1 bash benchmarks/progressive_quality.sh > "$W/data.log" 2>&1 \
  || { tail -n 20 "$W/data.log"; log "data failed"; exit 1; }
tail -n 3 "$W/data.log"
threads=$(( $(nproc) / $(echo $ARMS | wc -w) )); [ "$threads" -ge 1 ] || threads=1
for arm in $ARMS; do
  extra_var=FLAGS_$arm
  mkdir -p "$OUT/$arm"
  OMP_NUM_THREADS=$threads PROG_FLAGS="$SHARED_FLAGS ${!extra_var:-}" PQ_DIR=$W/$arm OUT=$OUT/$arm SHARED_DATA=$W/shared \
    bash benchmarks/progressive_quality.sh > "$W/$arm.log" 2>&1 &
  log "arm $arm: $SHARED_FLAGS ${!extra_var:-} (pid $!)"
done
wait
for arm in $ARMS; do
  log "arm $arm:"; grep -E "^\[|exit|specificity|IoU" "$W/$arm.log" | tail -n 6
  rm -f "$OUT/$arm/evaluate_metrics.json"  # it is inside logs.tar.gz (eval/); $OUT holds at most 8 files
done
if [ -n "${PACK:-}" ] && [ -e "$W/$PACK/run/config.yaml" ]; then
  extra_var=FLAGS_$PACK
  "$PY" -m unflat models pack "$W/$PACK/run" --name "${PACK_NAME:-progressive-6cat-128-$PACK}" --out "$OUT/zoo" \
    --metrics "$W/$PACK/eval/metrics.json" \
    --recipe "unflat dataset synth --category chair table sofa mug car lamp --num-shapes 150 --views-per-shape 4 --resolution 128 (posed: ground-truth cameras; synth seed 0); held back: 12 shapes per category, seed 1000" \
    --command "ARMS='$ARMS' bash benchmarks/gpu_encoder_ab.sh: unflat train progressive --preset paper --batch-size $BATCH $SHARED_FLAGS ${!extra_var:-}, stopped by SIGTERM after $TRAIN_S s of training, sharing the GPU with the other arms"
fi
find "$OUT" -type f | sort
log "encoder A/B done in $((SECONDS - T0)) s"
