#!/usr/bin/env bash
# The shipped models (issue #24), trained and measured on the GPU machine in one device command each:
#   PART=reconstructor bash benchmarks/gpu_zoo.sh   progressive on posed embedded data (issue #21's recipe and
#                                                  [RESUME=1: train the work dir's run TRAIN_S more seconds]
#                                                  measurement and sheet: benchmarks/progressive_quality.sh)
#   PART=generator bash benchmarks/gpu_zoo.sh       mvtriplane on the 6 embedded categories (issue #22's
#                                                  time-to-quality benchmark, benchmarks/time_to_quality.sh)
# then `unflat models pack` turns the run into a zoo entry (fp16 safetensors + manifest with the commands and
# the metrics) under $OUT/zoo/. Carry .whl and .gl (docs/lab/gpu-runbook.md); SMOKE=1 runs both at CPU sizes.
# The sizes are chosen for the zoo's 30 MB: the reconstructor's network has 7.1M parameters (14 MB in fp16).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-runs/zoo-out}
mkdir -p "$OUT/zoo"
[ "${SMOKE:-0}" = 1 ] || source benchmarks/gpu_env.sh
git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
PART=${PART:?set PART=reconstructor or PART=generator}

case $PART in
reconstructor)
  W=${WORK:-runs/progressive_quality}
  NAME=${NAME:-progressive-6cat-128}
  # the zoo-sized network; stage I only at this budget (the solo stage-I run was the best on every held-back
  # figure, docs/methods/progressive.md); batch 32: the step is bound by host work, so a larger batch is cheap;
  # nvdiffrast (the carried diffrp-nvdiffrast wheel) is built while the data renders
  ZOO_FLAGS=${ZOO_FLAGS:-"--encoder.max-channels 256 --decoder.max-channels 256 --encoder.feature-dim 256 --losses.perceptual-features pyramid --lr 2e-4 --discriminator.lr 2e-4 --schedule.stage2-start 1000000 --schedule.stage3-start 1000000 --batch-size ${BATCH:-32}"}
  [ "${SMOKE:-0}" = 1 ] && ZOO_FLAGS="--losses.perceptual-features pyramid"
  PROG_FLAGS="$ZOO_FLAGS" NVDIFFRAST=1 PQ_DIR=$W OUT=$OUT bash benchmarks/progressive_quality.sh
  "$PY" -m unflat models pack "$W/run" --name "$NAME" --out "$OUT/zoo" --metrics "$W/eval/metrics.json" \
    --recipe "unflat dataset synth --category chair table sofa mug car lamp --num-shapes 150 --views-per-shape 4 --resolution 128 (posed: ground-truth cameras; synth seed 0); held back: 12 shapes per category, seed 1000" \
    --command "PART=reconstructor bash benchmarks/gpu_zoo.sh (git $git): unflat train progressive --preset paper $ZOO_FLAGS, stopped by SIGTERM after $(cat "$W/train_budget_s") s of training$( [ "${RESUME:-0}" = 1 ] && echo " in all (continued with RESUME=1: unflat train --resume)")"
  ;;
generator)
  W=${WORK:-runs/time-to-quality}
  NAME=${NAME:-mvtriplane-6cat-64}
  export METHODS=${METHODS:-mvtriplane} BUDGET_S=${BUDGET_S:-360} EVAL_AT=${EVAL_AT:-"120 240 360"} WORK=$W OUT=$OUT
  [ "${SMOKE:-0}" = 1 ] && export BUDGET_S=40 EVAL_AT="20 40"
  bash benchmarks/time_to_quality.sh
  # the evaluation at the last budget (evaluations run in parallel: the newest file is not the last checkpoint's)
  last="$W/eval/mvtriplane-${EVAL_AT##* }.json"; [ -e "$last" ] || last=
  "$PY" -m unflat models pack "$W/runs/mvtriplane" --name "$NAME" --out "$OUT/zoo" ${last:+--metrics "$last"} \
    --recipe "unflat dataset synth --category car chair lamp mug sofa table --num-shapes ${SHAPES:-200} --resolution 64 (synth seed 0); held back: ${HELD:-100} shapes per category, seed 1000" \
    --command "PART=generator bash benchmarks/gpu_zoo.sh (git $git): $(cat "$W/runs/mvtriplane.flags"), stopped by SIGINT after $BUDGET_S s"
  ;;
*) echo "PART must be reconstructor or generator, got $PART" >&2; exit 2 ;;
esac
ls -la "$OUT/zoo"
