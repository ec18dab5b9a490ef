#!/usr/bin/env bash
# CPU mini-ablation of IG-GAN's DOM on the 2-core CPU machine (about 10 minutes a seed, 5 to prepare): grey chairs 32^2, the `small`
# preset (32^3 voxels, batch 8), a proxy pre-trained once on random cubes/tables (400 steps), 600 GAN steps per arm,
# seeds 0 and 1 (SEEDS), arms: DOM on log D (Eq. 8 as printed, lambda 100), no DOM, DOM on log(1 - D) (D's loss on
# a fake, as the paper's introduction describes DOM: --renderer.dom-space d_loss), DOM on probabilities (unflat's bounded
# variant, --renderer.dom-space probability). FID/KID on a domain backbone trained on the same images, COV/MMD vs 32
# ground-truth meshes. Results: docs/methods/iggan.md, "DOM: which output is matched".
#   bash benchmarks/ablation_iggan_cpu.sh          (writes ABL_DIR, default runs/abl/iggan-cpu; log lines per arm)
#   SEEDS="2" bash benchmarks/ablation_iggan_cpu.sh  (more seeds later, on the same data, backbone and proxy)
set -uo pipefail
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
D=${ABL_DIR:-runs/abl/iggan-cpu}; mkdir -p "$D"
T0=$SECONDS; log() { echo "[$((SECONDS - T0)) s] $*"; }
prepare() {  # data, FID backbone, pre-trained proxy
  python3 -m unflat dataset synth --category chair --material grey --num-shapes 400 --resolution 32 --views-per-shape 1 \
    --seed 0 --workers 2 --out $D/data --overwrite > $D/synth.log 2>&1; log synth done
  ( timeout -s INT 240 python3 -m unflat train backbone --data $D/data --out $D/bb --preset small --max-steps 400 \
      --batch-size 64 --no-tensorboard > $D/bb.log 2>&1
    [ -f $D/data/backbone.safetensors ] || { python3 -m unflat export $D/bb --out $D/bb && cp $D/bb/backbone.safetensors $D/bb/backbone.json $D/data/; } ) &
  timeout -s INT 240 python3 -m unflat train iggan-renderer --preset small --data $D/data --shapes mixed --max-steps 400 \
    --checkpoint-every 100 --keep-checkpoints 1 --sample-every 0 --no-tensorboard --out $D/renderer > $D/renderer.log 2>&1
  wait; log "backbone + renderer done"
}
# a second call with other SEEDS reuses them, so that all seeds share one backbone (FIDs stay comparable)
if [ -f "$D/data/backbone.safetensors" ] && [ -f "$D/renderer/config.yaml" ]; then log "reusing $D/data, backbone and renderer"
else prepare; fi
arm() {  # arm NAME SEED FLAGS...
  local name=$1 seed=$2; shift 2
  timeout -s INT 900 python3 -m unflat train iggan --preset small --data $D/data --renderer.checkpoint $D/renderer \
    --renderer.pretrain-steps 0 --max-steps 600 --seed $seed --log-every 50 --sample-every 600 --checkpoint-every 300 \
    --keep-checkpoints 1 --no-tensorboard "$@" --out $D/$name > $D/$name.log 2>&1
  timeout -s INT 300 python3 -m unflat evaluate $D/$name --metrics fid kid chamfer --num-samples 500 --num-shapes 32 \
    --out $D/$name/metrics.json > $D/$name-eval.log 2>&1
  log "$name: $(grep -h '^FID\|^COV' $D/$name-eval.log | tr '\n' ' ')"
}
for seed in ${SEEDS:-0 1}; do
  arm dom-s$seed $seed --renderer.dom-weight 100 --renderer.dom-space log_d & arm nodom-s$seed $seed --renderer.dom-weight 0 & wait
  arm domprob-s$seed $seed --renderer.dom-weight 100 --renderer.dom-space probability & arm domdl-s$seed $seed --renderer.dom-weight 100 --renderer.dom-space d_loss & wait
done
log all done
