#!/usr/bin/env bash
# IG-GAN (Lunz et al.): discriminator output matching (DOM) on/off at equal budget, on grey chairs.
#
#   bash benchmarks/ablation_iggan.sh arms                # the arms, one line
#   bash benchmarks/ablation_iggan.sh prepare             # <= 150 s: grey chairs, FID backbone, pre-trained proxy renderer
#   bash benchmarks/ablation_iggan.sh dom|nodom           # each <= 330 s, in parallel
#   bash benchmarks/ablation_iggan.sh report              # markdown table on stdout
#   SMOKE=1 bash benchmarks/ablation_iggan.sh all         # the whole thing at tiny sizes on CPU
#
# Data: the paper's setting (Sec. 4.2): single-view renders of one category with one uniform grey material and
# the renderer's two beam lights (`unflat dataset synth --material grey`; docs/methods/iggan.md "Data").
# The proxy renderer is pre-trained on random tables/cubes at the dataset's camera distance (`unflat train
# iggan-renderer --data`), as the paper does, and both arms start from it.
# Arms (each arm's config fields: benchmarks/arms/iggan/ARM.yaml, passed with --config) (same data, sizes, batch 32, seed SEED (default 0) and STEPS):
#   dom    DOM weight 100 on log D (the paper's Eq. 8-9 as printed, lambda = 100: --renderer.dom-space log_d)
#   nodom  --renderer.dom-weight 0 (the proxy learns from L2 to OpenGL only)
#   dombal DOM weight 100 x (RES/128)^2: the paper's balance between DOM and the L2 term, which Eq. (5) sums over
#          pixels (at 64^2 that L2 is 4x smaller than at the paper's 128^2, so weight 100 weighs DOM 4x more; the
#          second GPU run's dom arm diverged at 64^2: docs/lab/results-h100.md)
#   domdl  DOM weight 100 matching log(1 - D), D's loss on a generated image (--renderer.dom-space d_loss, unflat's default):
#          how the paper's introduction describes DOM; it fades once D is sure an image is fake, where Eq. 8's log D
#          keeps pulling
#   domprob DOM weight 100 matching D's probabilities instead of log D (--renderer.dom-space probability): unflat's own
#          bounded variant, not the paper's; its term fades once D is confident (where the log-D arms diverged)
# FID/KID on the domain backbone trained in `prepare`; COV/MMD/1-NNA (Chamfer) against the ground-truth synth meshes.
# The arms in SHOWCASE (default: dom) also write a sample grid (generated/renders.png: OpenGL renders; proxy.png) and two GLB meshes
# (meshes/) for docs/images/iggan-h100/.
# Each arm: runs/abl/iggan/<arm>/summary.json (metrics, steps reached, wall seconds, exact commands).
set -uo pipefail
source benchmarks/ablation_lib.sh  # SMOKE, ABL_PHASE, PY, log, run, arm_dir, trained_seconds
M=iggan
D=${ABL_DIR:-runs/abl/$M}
mkdir -p "$D"
ARMS="dom nodom dombal domdl domprob"
CACHE=$(cd "$D" && pwd)/cache
export UNFLAT_CACHE_DIR=$CACHE   # FID reference statistics, shared by the arms

if [ "$SMOKE" = 1 ]; then   # tiny sizes on CPU: proves the script end to end, numbers mean nothing
  DEV=cpu; RES=16; SHAPES=8; WORKERS=2
  ARCH=(--preset tiny)
  BB_ARGS=(--preset tiny --max-steps 3 --batch-size 8); RENDERER_STEPS=3; PREP_SECONDS=90
  STEPS=${STEPS:-3}; TRAIN_SECONDS=120; EVAL_SECONDS=120
  EVAL_ARGS=(--num-samples 16 --num-shapes 4 --num-points 256)
  GEN_NUM=4
else
  DEV=cuda; RES=64; SHAPES=${SHAPES:-1000}; WORKERS=4
  # A mid preset between `small` and `paper` so that an arm reaches STEPS in the budget with ~6 jobs per GPU:
  # 32^3 voxels (paper 64^3), 64px images (paper 128), the paper's batch 32 and learning rates; the proxy's
  # 3D stage at 16 channels, 2D at 64. At these sizes a step costs about 40 ms alone on an H100 (the OpenGL
  # half is the batched moderngl renderer), so 1000 steps fit TRAIN_SECONDS when shared; `report` flags an arm
  # that stopped short.
  ARCH=(--preset small --voxel-resolution 32 --image-resolution 64 --renderer.channels-3d 16
        --renderer.channels-2d 64 --renderer.res-blocks-3d 1 --renderer.res-blocks-2d 2 --batch-size 32)
  BB_ARGS=(--preset small --max-steps 1000 --batch-size 128); RENDERER_STEPS=2000; PREP_SECONDS=${PREP_SECONDS:-70}
  STEPS=${STEPS:-1000}; TRAIN_SECONDS=${TRAIN_SECONDS:-230}; EVAL_SECONDS=${EVAL_SECONDS:-90}
  EVAL_ARGS=(--num-samples 1000 --num-shapes "${NUM_SHAPES:-32}")  # COV/MMD: generated and ground-truth meshes
  GEN_NUM=16
fi
GAN=(--generator.z-dim 128 --generator.channels 32 --generator.max-channels 256 --generator.output-bias -2
     --discriminator.channels 32 --discriminator.max-channels 256 --renderer.pretrain-steps 0 --renderer.checkpoint "$D/renderer")
[ "$SMOKE" = 1 ] && GAN=(--renderer.pretrain-steps 0 --renderer.checkpoint "$D/renderer")
# The arms' training seed (the data, backbone and proxy pre-training keep seed 0): SEED, or an arm's -sN suffix
case "${1:-}" in *-s[0-9]*) SEED=${1##*-s} ;; *) SEED=${SEED:-0} ;; esac
COMMON=(--data "$D/data" --max-steps "$STEPS" --seed "$SEED" --device "$DEV" --log-every 25 --sample-every "$STEPS"
        --checkpoint-every 250 --keep-checkpoints 1 --no-tensorboard)

backbone_file() {  # backbone_file RUN_DIR : the run's backbone.safetensors, exported from its checkpoint if cut short
  [ -f "$1/backbone.safetensors" ] || run $PY -m unflat export "$1" --out "$1" --device $DEV
}

prepare() {
  CMDS=$D/prepare.commands; : > "$CMDS"; local t0=$SECONDS
  run $PY -m unflat dataset synth --category chair --material grey --num-shapes $SHAPES --resolution $RES \
      --views-per-shape 1 --seed 0 --workers $WORKERS --out "$D/data" --overwrite
  # two short GPU jobs at once: the FID backbone (installed into the data) and the proxy renderer's pre-training
  ( run timeout -s INT $PREP_SECONDS $PY -m unflat train backbone --data "$D/data" --out "$D/backbone-run" --device $DEV \
        --seed 0 --no-tensorboard "${BB_ARGS[@]}" > "$D/backbone.log" 2>&1
    backbone_file "$D/backbone-run" && [ -f "$D/data/backbone.safetensors" ] \
      || cp "$D/backbone-run/backbone.safetensors" "$D/backbone-run/backbone.json" "$D/data/" ) &
  run timeout -s INT $PREP_SECONDS $PY -m unflat train iggan-renderer "${ARCH[@]}" --data "$D/data" --shapes mixed \
      --max-steps $RENDERER_STEPS --checkpoint-every 500 --keep-checkpoints 1 --sample-every 0 --seed 0 \
      --device $DEV --no-tensorboard --out "$D/renderer" > "$D/renderer.log" 2>&1
  wait
  tail -n 1 "$D/backbone.log" "$D/renderer.log"
  log "prepare took $((SECONDS - t0)) s"
}

train_arm() {  # train_arm ARM FLAGS...
  local arm=$1; shift
  local A=$D/$arm; arm_dir "$A"
  local config; config=$(arm_config "$arm") || return 1
  local t0=$SECONDS
  [ "$PHASE" = eval ] || run timeout -s INT $TRAIN_SECONDS $PY -m unflat train iggan --config "$config" "${ARCH[@]}" "${GAN[@]}" "${COMMON[@]}" "$@" \
      --out "$A/run" > "$A/train.log" 2>&1
  local train_s; train_s=$(trained_seconds "$A" $((SECONDS - t0))); t0=$SECONDS
  [ "$PHASE" = train ] && return 0
  run timeout -s INT $EVAL_SECONDS $PY -m unflat evaluate "$A/run" --data "$D/data" --metrics fid kid chamfer \
      --backbone "$D/data/backbone.safetensors" "${EVAL_ARGS[@]}" --device $DEV --out "$A/metrics.json" > "$A/eval.log" 2>&1
  tail -n 3 "$A/eval.log"
  $PY benchmarks/ablation_summary.py summary "$A" --method $M --arm "$arm" --steps-target "$STEPS" \
      --train-s "$train_s" --eval-s $((SECONDS - t0))
}

showcase() {  # showcase ARM : a sample grid and two GLB meshes of the arm's run (for docs/images/iggan-h100/)
  local A=$D/$1
  run timeout -s INT 60 $PY -m unflat generate "$A/run" --num $GEN_NUM --seed 0 --device $DEV --out "$A/generated" \
      > "$A/generate.log" 2>&1
  run timeout -s INT 60 $PY -m unflat export "$A/run" --num 2 --seed 0 --format glb --device $DEV --out "$A/meshes" \
      > "$A/export.log" 2>&1
  ls -la "$A/generated/renders.png" "$A/meshes" 2>&1 | tail -n 4
}

dom_balanced() {  # the DOM weight with the paper's DOM : L2 balance at this image resolution
  python3 -c "print(f'{100 * $RES * $RES / 128 ** 2:g}')"
}

seeded_arms() {  # the seed-suffixed arms that have run (dom-s2, nodom-s2, ...), in seed order
  ls -d "$D"/*-s[0-9]* 2>/dev/null | xargs -rn1 basename | sort -t s -k2 -n | tr '\n' ' '
}

report() {
  $PY benchmarks/ablation_summary.py report "$D" --method $M --arms $ARMS $(seeded_arms) \
      --title "iggan: discriminator output matching at equal budget (grey chairs, ${RES}px, pre-trained proxy)" \
      --labels "dom=DOM on log D, weight 100 (Eq. 8 as printed)" "nodom=no DOM (--renderer.dom-weight 0)" \
               "dombal=DOM weight $(dom_balanced) (100 at the paper's 128^2, scaled by pixels)" \
               "domdl=DOM on log(1 - D), weight 100 (D's loss, the paper's introduction; the default)" \
               "domprob=DOM on probabilities, weight 100 (unflat's variant, not the paper)"
}

arm_flags() {  # arm_flags NAME : the flags an arm adds to its file benchmarks/arms/iggan/NAME.yaml (no seed suffix)
  case "$1" in
    dom|nodom|domdl|domprob) echo ;;
    dombal) echo --renderer.dom-weight "$(dom_balanced)" ;;  # computed from RES
    *) return 1 ;;
  esac
}

case "${1:-}" in
  arms) echo "$ARMS" ;;
  prepare) prepare ;;
  report) report ;;
  all) prepare; for a in $ARMS; do bash "$0" "$a"; done; report ;;
  # an arm, or an arm with a seed suffix: the same arm trained with another SEED (e.g. dom-s2, nodom-s2: seed 2),
  # so one call compares DOM and no DOM over several seeds: ARMS_iggan="dom-s2 nodom-s2 dom-s3 nodom-s3" gpu_ablations.sh
  *)
    if ! flags=$(arm_flags "${1%-s[0-9]*}"); then
      echo "usage: $0 arms|prepare|${ARMS// /|}|report|all (an arm may take a seed suffix: dom-s2)" >&2; exit 2
    fi
    # shellcheck disable=SC2086  # flags: words
    train_arm "$1" $flags
    if [[ " ${SHOWCASE:-dom} " == *" $1 "* ]] && [ "$PHASE" != train ]; then showcase "$1"; fi ;;
esac
